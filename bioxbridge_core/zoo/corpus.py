"""Continuous, annotated signals that pre-training cuts windows of any length from.

Each recording (or each lead of a multi-lead record) is read once, marked bad where the raw
signal is NaN, flat or out of range, filtered and resampled to the encoder's rate exactly as
the product does (``zoo.data``), and annotated with its physiological events
(``zoo.physio.annotate``: beats, QRS widths, pulse feet, skin-conductance responses). Each signal
is cached as one ``.npz`` under the project cache folder, so an interrupted build resumes and
later runs start in seconds.

``Corpus.sample`` draws windows of a given length: first a dataset (by fixed weights, so a
large database does not drown a small one), then a signal of it (by length), then a start
whose whole window is good.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from .._io import atomic_save_npz
from ..data.preprocess import flat_mask, nan_mask
from ..errors import RecordingError
from ..paths import cache_dir
from .data import (CACHE_VERSION, EEGMAT_EEG, PREPS, STRESS_FILES, Prep, _channel_rows, _fill_nan, _read,
                   bandpass, read_e4_csv, resample, simulate_signal, stress_subjects)
from .physio import annotate

log = logging.getLogger(__name__)


@dataclass
class Signal:
    """One continuous signal at the encoder's rate.

    ``x`` (n_chans, n) float32 filtered, in the file's unit (not z-scored); ``good`` (n,) bool,
    False where the raw signal was NaN, flat or out of range; ``ann`` its events (``physio.annotate``).
    """

    x: np.ndarray
    good: np.ndarray
    ann: dict[str, np.ndarray]
    dataset: str
    source: str
    subject: str
    channel: str = ""

    @property
    def n(self) -> int:
        return int(self.x.shape[1])

    def save(self, path: Path) -> None:
        meta = np.asarray([self.dataset, self.source, self.subject, self.channel], dtype="U128")
        atomic_save_npz(path, x=self.x, good=self.good, meta=meta, **{f"ann_{k}": v for k, v in self.ann.items()})

    @classmethod
    def load(cls, path: Path) -> "Signal":
        with np.load(path, allow_pickle=False) as z:
            ann = {k[4:]: z[k] for k in z.files if k.startswith("ann_")}
            d, s, sub, ch = (str(v) for v in z["meta"])
            return cls(z["x"], z["good"].astype(bool), ann, d, s, sub, ch)


def _good_at_rate(bad_raw: np.ndarray, raw_sfreq: float, sfreq: float, n_out: int) -> np.ndarray:
    """Map a raw-rate bad mask to ``n_out`` samples at ``sfreq``: a sample is good when no bad raw sample
    lies within one output period of it."""
    cs = np.concatenate(([0], np.cumsum(bad_raw, dtype=np.int64)))
    t = np.arange(n_out) / sfreq
    i0 = np.clip(np.floor((t - 1.0 / sfreq) * raw_sfreq).astype(np.int64), 0, bad_raw.size)
    i1 = np.clip(np.ceil((t + 1.0 / sfreq) * raw_sfreq).astype(np.int64) + 1, 0, bad_raw.size)
    return (cs[i1] - cs[i0]) == 0


def make_signal(raw: np.ndarray, raw_sfreq: float, prep: Prep, *, kind: str, dataset: str, source: str,
                subject: str, channel: str = "") -> Signal:
    """Quality mask, filter, resample and annotate one raw signal ``(n_chans, n)`` at ``raw_sfreq``."""
    raw = np.atleast_2d(np.asarray(raw, dtype=np.float64))
    bad = nan_mask(raw) | flat_mask(np.nan_to_num(raw), raw_sfreq, prep.flat_s)
    if prep.min_value is not None:
        bad |= (np.nan_to_num(raw, nan=prep.min_value) < prep.min_value).any(axis=0)
    filt = bandpass(_fill_nan(raw), raw_sfreq, prep.band_hz, prep.filter_order, max_hz=0.45 * prep.sfreq)
    x = resample(filt, raw_sfreq, prep.sfreq).astype(np.float32)
    good = _good_at_rate(bad, raw_sfreq, prep.sfreq, x.shape[1])
    ann = annotate(kind, x[0], prep.sfreq) if kind in ("ecg", "ppg", "eda") else {}
    return Signal(x, good, ann, dataset, source, subject, channel)


@dataclass
class Corpus:
    """Annotated signals of one encoder's pre-training data, with per-dataset sampling weights."""

    encoder: str
    sfreq: float
    signals: list[Signal]
    weights: dict[str, float]
    ch_names: tuple[str, ...] = ()
    _cum_bad: list[np.ndarray] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._cum_bad = [np.concatenate(([0], np.cumsum(~s.good, dtype=np.int64))) for s in self.signals]

    def describe(self) -> dict[str, dict]:
        """Per dataset: signals, subjects, good hours, sampling weight."""
        out: dict[str, dict] = {}
        for s in self.signals:
            d = out.setdefault(s.dataset, {"signals": 0, "subjects": set(), "hours": 0.0,
                                           "weight": self.weights.get(s.dataset, 0.0)})
            d["signals"] += 1
            d["subjects"].add(s.subject)
            d["hours"] += float(s.good.sum()) / self.sfreq / 3600.0
        for d in out.values():
            d["subjects"] = len(d["subjects"])
            d["hours"] = round(d["hours"], 2)
        return out

    def split(self, is_val: Callable[[Signal], bool]) -> tuple["Corpus", "Corpus"]:
        """(train, val) corpora by a per-signal rule (e.g. held-out subjects)."""
        tr = [s for s in self.signals if not is_val(s)]
        va = [s for s in self.signals if is_val(s)]
        return (Corpus(self.encoder, self.sfreq, tr, self.weights, self.ch_names),
                Corpus(self.encoder, self.sfreq, va, self.weights, self.ch_names))

    def sample(self, rng: np.random.Generator, n_times: int, count: int, *, tries: int = 50
               ) -> list[tuple[int, int]]:
        """``count`` (signal index, start sample) pairs whose ``n_times`` samples are all good."""
        by_ds: dict[str, list[int]] = {}
        for i, s in enumerate(self.signals):
            if s.n >= n_times:
                by_ds.setdefault(s.dataset, []).append(i)
        if not by_ds:
            raise RecordingError(f"no {self.encoder} signal is {n_times / self.sfreq:g} s long.")
        names = sorted(by_ds)
        w = np.array([self.weights.get(d, 1.0) for d in names], dtype=np.float64)
        w = w / w.sum()
        lengths = {d: np.array([self.signals[i].n for i in by_ds[d]], dtype=np.float64) for d in names}
        out: list[tuple[int, int]] = []
        for _ in range(count):
            for _attempt in range(tries):
                d = names[int(rng.choice(len(names), p=w))]
                p = lengths[d] / lengths[d].sum()
                i = by_ds[d][int(rng.choice(len(p), p=p))]
                start = int(rng.integers(0, self.signals[i].n - n_times + 1))
                cb = self._cum_bad[i]
                if cb[start + n_times] - cb[start] == 0:
                    out.append((i, start))
                    break
            else:
                raise RecordingError(f"could not find a good {n_times / self.sfreq:g} s {self.encoder} window "
                                     f"in {tries} tries.")
        return out

    def window(self, i: int, start: int, n_times: int, chans: Sequence[int] | None = None) -> np.ndarray:
        """Filtered samples ``(n_chans, n_times)`` float32 (not z-scored)."""
        x = self.signals[i].x[:, start:start + n_times]
        return x if chans is None else x[list(chans)]


# -- building the corpora ------------------------------------------------------------------------
def _cached(key: dict, make: Callable[[], Signal | None], folder: Path) -> Signal | None:
    digest = hashlib.sha1(repr(sorted(key.items())).encode()).hexdigest()[:16]
    path = folder / f"{digest}.npz"
    if path.exists():
        return Signal.load(path)
    sig = make()
    if sig is not None:
        sig.save(path)
    return sig


def _eegmat(root: Path, encoder: str, prep: Prep, folder: Path) -> Iterator[Signal]:
    kind = encoder.upper()
    for f in sorted((root / "eegmat").glob("Subject*_*.edf")):
        def make(f=f):
            data, sfreq, names, types = _read(f)
            rows = _channel_rows(names, types, kind)
            if not rows:
                return None
            subject = f.stem.rsplit("_", 1)[0]
            return make_signal(data[rows], sfreq, prep, kind=encoder, dataset="eegmat", source=f.name,
                               subject=subject, channel="" if kind == "EEG" else names[rows[0]])
        sig = _cached({"f": str(f.resolve()), "enc": encoder, "prep": repr(asdict(prep)), "v": CACHE_VERSION},
                      make, folder)
        if sig is not None:
            yield sig


def _cinc(root: Path, encoder: str, prep: Prep, folder: Path, end_s: float) -> Iterator[Signal]:
    kind = encoder.upper()
    for h in sorted((root / "cinc2015_vt").glob("*.hea")):
        key = {"f": str(h.resolve()), "enc": encoder, "prep": repr(asdict(prep)), "end": end_s, "v": CACHE_VERSION}
        lead_keys = [dict(key, lead=k) for k in range(3)]
        hits = [folder / (hashlib.sha1(repr(sorted(k.items())).encode()).hexdigest()[:16] + ".npz")
                for k in lead_keys]
        done = folder / (hashlib.sha1(repr(sorted(key.items())).encode()).hexdigest()[:16] + ".done")
        if done.exists():
            for p in hits:
                if p.exists():
                    yield Signal.load(p)
            continue
        data, sfreq, names, types = _read(h)
        rows = _channel_rows(names, types, kind)
        for k, r in enumerate(rows[:3]):
            raw = data[r:r + 1, :int(end_s * sfreq)]
            sig = make_signal(raw, sfreq, prep, kind=encoder, dataset="cinc2015_vt", source=h.stem,
                              subject=h.stem, channel=names[r])
            sig.save(hits[k])
            yield sig
        done.write_text("ok")


def _stress(root: Path, encoder: str, prep: Prep, folder: Path) -> Iterator[Signal]:
    kind = encoder.upper()
    for sub in stress_subjects(root):
        path = sub / STRESS_FILES[kind]
        if not path.is_file():
            continue

        def make(path=path, sub=sub):
            sig, sfreq, _start = read_e4_csv(path)
            return make_signal(sig[None], sfreq, prep, kind=encoder, dataset="stress_predict",
                               source=f"{sub.name}/{path.name}", subject=sub.name, channel=path.stem)
        s = _cached({"f": str(path.resolve()), "enc": encoder, "prep": repr(asdict(prep)), "v": CACHE_VERSION},
                    make, folder)
        if s is not None:
            yield s


def _simulated(encoder: str, prep: Prep, folder: Path, *, n_signals: int, duration_s: float, seed: int
               ) -> Iterator[Signal]:
    kind = encoder.upper()
    sfreq = 250.0 if kind != "EDA" else 32.0
    rng = np.random.default_rng(seed)
    for i in range(n_signals):
        child = np.random.default_rng(rng.integers(0, 2**63 - 1))

        def make(i=i, child=child):
            raw = simulate_signal(kind, child, duration_s=duration_s, sfreq=sfreq, index=i)
            return make_signal(raw[None], sfreq, prep, kind=encoder, dataset=f"neurokit2 {encoder}_simulate",
                               source=f"sim_{encoder}_{i}", subject=f"sim{i}", channel=kind)
        s = _cached({"sim": encoder, "i": i, "seed": seed, "dur": duration_s, "sfreq": sfreq,
                     "prep": repr(asdict(prep)), "v": CACHE_VERSION}, make, folder)
        if s is not None:
            yield s


#: dataset sampling weights per encoder (each dataset gets this share of the windows)
DATASET_WEIGHTS: dict[str, dict[str, float]] = {
    "ecg": {"eegmat": 1 / 3, "cinc2015_vt": 1 / 3, "neurokit2 ecg_simulate": 1 / 3},
    "ppg": {"cinc2015_vt": 1 / 3, "stress_predict": 1 / 3, "neurokit2 ppg_simulate": 1 / 3},
    "eeg": {"eegmat": 1.0},
    "eda": {"stress_predict": 2 / 3, "neurokit2 eda_simulate": 1 / 3},
}
#: CinC records are cut here so the labelled 284-300 s alarm span of the probes is never seen
CINC_PRETRAIN_END_S = 280.0


def build_corpus(encoder: str, data_root: str | Path | None, *, seed: int = 0, include_simulated: bool = True,
                 n_simulated: int = 40, simulated_s: float = 300.0) -> Corpus:
    """All pre-training signals of ``encoder`` ('ecg', 'ppg', 'eeg', 'eda'), built or read from the cache.

    Sources: ecg = eegmat ECG + CinC ECG leads (0-280 s) + simulated; ppg = CinC PLETH (0-280 s) +
    Stress-Predict BVP + simulated; eeg = eegmat EEG (19 channels); eda = Stress-Predict EDA + simulated.
    """
    prep = PREPS[encoder]
    folder = cache_dir("zoo", f"corpus_{encoder}")
    sigs: list[Signal] = []
    if data_root is not None:
        root = Path(data_root)
        if encoder in ("ecg", "eeg") and (root / "eegmat").is_dir():
            sigs += list(_eegmat(root, encoder, prep, folder))
        if encoder in ("ecg", "ppg") and (root / "cinc2015_vt").is_dir():
            sigs += list(_cinc(root, encoder, prep, folder, CINC_PRETRAIN_END_S))
        if encoder in ("ppg", "eda") and (root / "stress_predict").is_dir():
            sigs += list(_stress(root, encoder, prep, folder))
    if include_simulated and encoder in ("ecg", "ppg", "eda"):
        sigs += list(_simulated(encoder, prep, folder, n_signals=n_simulated, duration_s=simulated_s, seed=seed))
    sigs = [s for s in sigs if s.good.any()]
    if not sigs:
        raise RecordingError(f"no pre-training signals for builtin:{encoder} under {data_root}.")
    weights = {d: w for d, w in DATASET_WEIGHTS[encoder].items() if any(s.dataset == d for s in sigs)}
    return Corpus(encoder, prep.sfreq, sigs, weights, EEGMAT_EEG if encoder == "eeg" else ())
