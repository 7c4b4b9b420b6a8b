"""Channel names: 10-20 electrodes, bipolar derivations, and matching a recording's channels to an encoder.

EEG channel names come in two kinds, and an encoder must never confuse them:

- **referential**: one electrode against a common reference -- ``EEG Fp1``,
  ``Fp1-REF``, ``EEG Fp1-LE`` (linked ears), ``Fp1-AVG`` (average reference),
  and ``Fp1-A1`` / ``EEG F3-A2`` / ``C4-M1``. Decision: a channel whose second
  part is an ear or mastoid (A1, A2, M1, M2) is *referential* to that ear, as in
  the clinical "ear-referenced" montage, so ``eeg_position('EEG F3-A2') == 'F3'``.
- **bipolar derivations**: the difference of two scalp electrodes -- ``EEG Fpz-Cz``
  (Sleep-EDF), ``FP1-F7`` (CHB-MIT's double banana), ``T3-T5``. Also a
  derivation between two references (``EEG A2-A1``). ``parse_derivation`` gives
  ``(anode, cathode)``; ``eeg_position`` gives ``None`` for them, never the first
  electrode (a Fpz-Cz difference is not a Fpz signal).

Electrode names are upper-cased 10-20/10-10 names (``EEG_1020``); the old and new
names of the same temporal sites are aliases (T3=T7, T4=T8, T5=P7, T6=P8) and so
are the ear/mastoid pairs (A1=M1, A2=M2) when names are compared.

``match_channels`` picks a recording's channels for an encoder's ``SignalSpec``:
by exact name, else by electrode (single-electrode encoders) or by derivation
(encoders built for a bipolar montage, whose ``spec.ch_names`` are derivations
such as ``"FP1-F7"``), case- and prefix-insensitively (``"EEG Fp1-F7" == "FP1-F7"``).
"""

from __future__ import annotations

import logging
import re
from typing import Sequence

from ..errors import EncoderError, WindowingError

logger = logging.getLogger(__name__)

# Standard 10-20 / 10-10 electrode names (upper-cased) used to recognise EEG channels.
EEG_1020 = (
    "FP1 FPZ FP2 AF7 AF3 AFZ AF4 AF8 F9 F7 F5 F3 F1 FZ F2 F4 F6 F8 F10 FT9 FT7 FC5 FC3 FC1 FCZ FC2 FC4 FC6 "
    "FT8 FT10 T9 T7 T3 C5 C3 C1 CZ C2 C4 C6 T8 T4 T10 TP9 TP7 CP5 CP3 CP1 CPZ CP2 CP4 CP6 TP8 TP10 P9 P7 T5 "
    "P5 P3 P1 PZ P2 P4 P6 P8 T6 P10 PO7 PO3 POZ PO4 PO8 O1 OZ O2 IZ A1 A2 M1 M2"
).split()
_ELECTRODES = frozenset(EEG_1020)
#: ear / mastoid references: ``X-A1`` is X referred to the left ear (referential)
EAR_REFERENCES = frozenset({"A1", "A2", "M1", "M2"})
#: words that name a common reference rather than an electrode
REFERENCE_WORDS = frozenset({"REF", "LE", "RE", "AV", "AVG", "AVE", "AVERAGE", "CAR", "AR", "LINKED", "LM", "MEAN"})
#: old (10-20) and new (10-10) names of the same sites, and ear = mastoid
ALIASES = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8", "M1": "A1", "M2": "A2"}

_PREFIX = re.compile(r"^\s*(?:EEG|ELECTROENCEPHALOGRAM)(?:[\s:_\-]+|$)", re.IGNORECASE)
_DUP_SUFFIX = re.compile(r"-\d+$")  # CHB-MIT writes a repeated derivation as 'T8-P8-0', 'T8-P8-1'
_DASHES = re.compile(r"\s*[-\u2010\u2011\u2012\u2013\u2014\u2212]\s*")


def _canon(electrode: str) -> str:
    return ALIASES.get(electrode, electrode)


def _parts(name: str) -> list[str] | None:
    """Upper-cased parts of an EEG name around '-' (prefix ``EEG`` removed); None when not EEG-like."""
    text = _PREFIX.sub("", str(name).strip()).upper()
    text = _DUP_SUFFIX.sub("", text) if text.count("-") >= 2 else text
    parts = [p.strip() for p in _DASHES.split(text)]
    if not parts or any(not p for p in parts):
        return None
    return parts


def _electrode(part: str) -> str | None:
    """The electrode named by one part (``'FP1'``, ``'FP1 REF'``), or None."""
    tokens = [t for t in re.split(r"[\s:_./()]+", part) if t and t not in REFERENCE_WORDS]
    return tokens[0] if len(tokens) == 1 and tokens[0] in _ELECTRODES else None


def parse_derivation(name: str) -> tuple[str, str] | None:
    """``(anode, cathode)`` of a bipolar EEG derivation, or None for a referential/non-EEG name.

    ``'EEG Fpz-Cz'`` -> ``('FPZ', 'CZ')``; ``'FP1-F7'`` -> ``('FP1', 'F7')``; ``'EEG A2-A1'`` ->
    ``('A2', 'A1')``. Referential names give None: ``'EEG Fp1'``, ``'Fp1-REF'``, ``'EEG Fp1-LE'``,
    ``'Fp1-AVG'`` and ear/mastoid-referenced ``'Fp1-A1'``, ``'EEG F3-A2'`` (see the module docstring).
    Electrode names are returned upper-cased, as written (aliases are not applied).
    """
    parts = _parts(name)
    if parts is None or len(parts) != 2:
        return None
    a, c = _electrode(parts[0]), _electrode(parts[1])
    if a is None or c is None:
        return None
    if c in EAR_REFERENCES and a not in EAR_REFERENCES:
        return None  # referential to an ear or mastoid
    return a, c


def is_bipolar(name: str) -> bool:
    """True for a bipolar EEG derivation (see :func:`parse_derivation`)."""
    return parse_derivation(name) is not None


def eeg_position(name: str) -> str | None:
    """The single 10-20 electrode a referential channel records (``'EEG Fp1-REF'`` -> ``'FP1'``).

    None for names that are not one electrode, and for bipolar derivations
    (``'EEG Fpz-Cz'``): their signal belongs to no single electrode.
    """
    parts = _parts(name)
    if parts is None:
        return None
    if len(parts) == 1:
        return _electrode(parts[0])
    if len(parts) == 2:
        a = _electrode(parts[0])
        cathode = parts[1]
        if a is None:
            return None
        ref = _electrode(cathode)
        if cathode in REFERENCE_WORDS or (ref in EAR_REFERENCES and a not in EAR_REFERENCES):
            return a
    return None


def same_electrode(a: str, b: str) -> bool:
    """Electrode names equal up to the old/new aliases (T3 == T7, M1 == A1)."""
    return _canon(a.upper()) == _canon(b.upper())


def same_derivation(name: str, derivation: str) -> bool:
    """True when ``name`` is the derivation ``derivation`` (case, prefix and aliases ignored)."""
    d1, d2 = parse_derivation(name), parse_derivation(derivation)
    return d1 is not None and d2 is not None and same_electrode(d1[0], d2[0]) and same_electrode(d1[1], d2[1])


def bipolar_message(names: Sequence[str], who: str) -> str | None:
    """A refusal naming the bipolar derivations in ``names`` for an encoder of single electrodes, or None."""
    bip = [str(n) for n in names if is_bipolar(str(n))]
    if not bip:
        return None
    shown = ", ".join(f"'{n}'" for n in bip[:6]) + (" ..." if len(bip) > 6 else "")
    return (f"{who} takes single electrodes (referential EEG such as 'EEG Fp1'), but {shown} "
            f"{'is a bipolar derivation' if len(bip) == 1 else 'are bipolar derivations'} (the difference of "
            "two electrodes), which no single electrode stands for. Pick referential channels, or use an "
            "encoder built for a bipolar montage.")


def check_single_electrodes(names: Sequence[str], who: str) -> None:
    """Raise EncoderError when ``names`` holds bipolar derivations (for encoders of single electrodes)."""
    msg = bipolar_message(names, who)
    if msg:
        raise EncoderError(msg)


#: channel-name tokens of signals no encoder here takes (what ``apparent_modality`` can name besides
#: ``infer_ch_type``'s ECG/PPG/EEG/EDA/EMG); whole tokens only, so 'ARTIFACT' is not 'ART'
_OTHER_SIGNALS = {
    "RESP": re.compile(r"^(RESP\w*|THOR\w*|ABDO\w*|ABD|AIRFLOW|NASAL)$"),
    "ABP": re.compile(r"^(ABP\w*|ART\d*|ARTERIAL|IBP\d*|N?I?BP|CVP|PAP|AOBP)$"),
    "EOG": re.compile(r"^(EOG\w*|HEOG|VEOG|LOC|ROC)$"),
    "TEMP": re.compile(r"^(TEMP\w*|SKT|THERM\w*)$"),
    "ACC": re.compile(r"^(ACC\w*|ACCEL\w*)$"),
}
#: bare names that say nothing of the signal although ``infer_ch_type`` reads them as electrodes:
#: ear/mastoid electrode names double as analog inputs (OpenBCI/BITalino 'A1', 'A2')
_SAYS_NOTHING = {"A1", "A2", "M1", "M2"}


def apparent_modality(name: str) -> str | None:
    """What signal a channel name *recognisably* is, or None when the name says nothing.

    ECG/PPG/EEG/EDA/EMG come from ``recording.infer_ch_type`` ('PLETH' -> PPG, 'EEG Fp1' -> EEG,
    ECG lead names such as 'II', 'V', 'MLII' -> ECG); signals no encoder takes are named too:
    RESP ('RESP', 'Thorax'), ABP ('ABP', 'ART'), EOG, TEMP, ACC. Names such as 'ch0', 'A1' or
    'EXG Channel 0' give None.
    """
    from .recording import infer_ch_type  # lazy: recording imports this module

    text = str(name).strip()
    if text.upper() in _SAYS_NOTHING:
        return None
    kind = infer_ch_type(text)
    if kind != "other":
        return kind
    tokens = [t for t in re.split(r"[\s\-_:./()]+", text.upper()) if t]
    for label, pattern in _OTHER_SIGNALS.items():
        if any(pattern.match(t) for t in tokens):
            return label
    return None


def check_channel_modality(names: Sequence[str], modality: str, *, where: str, encoder: str | None = None) -> None:
    """Refuse a channel whose name is recognisably another signal than ``modality`` (WindowingError).

    ``where`` names the file (and manifest row); ``encoder`` the encoder in the message (default
    "the <modality> encoder"). Names that say nothing pass (see :func:`apparent_modality`).
    Nothing is checked for a modality of ``"other"`` or none.
    """
    if not modality or modality == "other":
        return
    for n in names:
        look = apparent_modality(n)
        if look is not None and look != modality:
            who = encoder or f"the {modality} encoder"
            raise WindowingError(f"{where}: channel '{n}' looks like {look}; {who} takes {modality}.")


def _spec_is_bipolar(spec_names: Sequence[str]) -> bool:
    return bool(spec_names) and all(is_bipolar(str(n)) for n in spec_names)


def match_channels(names: Sequence[str], spec, *, where: str, encoder: str | None = None) -> list[str]:
    """Channels of ``names`` to use for ``spec``, in the spec's order when it names its channels.

    Parameters
    ----------
    names : channel names offered (a manifest row's channels, a recording's channels).
    spec : the encoder's ``SignalSpec``; ``spec.ch_names`` may be single electrodes
        (matched by exact name, else by 10-20 electrode with aliases) or bipolar
        derivations such as ``"FP1-F7"`` (matched case-/prefix-insensitively with
        aliases: ``"EEG Fp1-F7"`` and ``"FP1-F7"`` are the same derivation).
    where : what to name in messages (file, manifest row and side).
    encoder : the encoder's name for messages (``builtin:ecg``); default "the <modality> encoder".

    Raises WindowingError naming ``where`` when a channel the spec needs is missing,
    when a single-electrode encoder is offered bipolar derivations in its place,
    when a channel's name is recognisably another signal than ``spec.modality`` ('PLETH' for an
    ECG encoder; see :func:`check_channel_modality`), or when the count does not fit
    ``spec.n_chans``. A reversed derivation
    (``F7-FP1`` for ``FP1-F7``) is never used silently: it is named in the error.
    """
    names = [str(n) for n in names]
    modality = getattr(spec, "modality", "")
    spec_names = list(getattr(spec, "ch_names", None) or [])
    if spec_names:
        bipolar_spec = _spec_is_bipolar(spec_names)
        chosen = []
        for want in spec_names:
            hit = [n for n in names if n.lower() == want.lower()]
            if not hit and bipolar_spec:
                hit = [n for n in names if same_derivation(n, want)]
            elif not hit:
                pos = eeg_position(want)
                if pos is not None:
                    hit = [n for n in names if (p := eeg_position(n)) is not None and same_electrode(p, pos)]
            if not hit:
                raise WindowingError(_missing_message(where, modality, want, names, bipolar_spec))
            chosen.append(hit[0])
        if len(chosen) != len(names):
            logger.info("%s: using %d of %d listed channels (those the encoder knows).", where, len(chosen),
                        len(names))
        names = chosen
    check_channel_modality(names, modality, where=where, encoder=encoder)
    n_chans = getattr(spec, "n_chans", None)
    if n_chans is not None and len(names) != n_chans:
        raise WindowingError(
            f"{where}: {len(names)} {modality} channel(s) {names} but the encoder takes {n_chans}.")
    return names


def _missing_message(where: str, modality: str, want: str, names: list[str], bipolar_spec: bool) -> str:
    base = f"{where}: the {modality} encoder needs channel '{want}' but the channels are {names}."
    if bipolar_spec:
        d = parse_derivation(want)
        rev = [n for n in names if d is not None and (p := parse_derivation(n)) is not None
               and same_electrode(p[0], d[1]) and same_electrode(p[1], d[0])]
        if rev:
            return base + (f" '{rev[0]}' is the reverse derivation (the signal with its sign flipped); it is not "
                           "used in its place.")
        if d is not None and not any(is_bipolar(n) for n in names):
            return base + (f" The encoder takes bipolar derivations such as '{want}' (the difference of two "
                           "electrodes); these channels are not derivations.")
        return base
    msg = bipolar_message(names, f"The {modality} encoder")
    return f"{base} {msg}" if msg else base
