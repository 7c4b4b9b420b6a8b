"""Compare the foundation adapters with the authors' own modules on the same random weights.

Needs local clones of the published repositories (nothing is downloaded here) and, for BIOT and
LaBraM, their Python dependencies on ``PYTHONPATH`` (``einops``; ``linear_attention_transformer==0.19.1``
with ``local-attention==1.8.6``, ``product-key-memory==0.1.10``, ``linformer``,
``axial-positional-embedding``, e.g. ``pip install --no-deps --target /tmp/ref ...``). LaBraM's modules
import three helpers from ``timm``; when timm is absent a minimal stand-in is installed in
``sys.modules`` (``drop_path`` is the identity in eval mode, ``trunc_normal_`` only initialises).

    PYTHONPATH=/tmp/ref python bench/check_adapter_parity.py --labram ~/src/LaBraM --biot ~/src/BIOT \\
        --cbramod ~/src/CBraMod --papagei ~/src/papagei-foundation-model

Each check builds the published module with random weights, writes its checkpoint in the published
layout, loads it with ``load_encoder("ADAPTER:PATH")`` and prints the largest absolute difference of
the outputs on random input (prepared exactly as the authors' pipelines do): LaBraM all tokens after
the student's final norm (their fine-tuning model with ``use_mean_pooling=False``), BIOT the pooled
embedding, CBraMod all patch features before ``proj_out``, PaPaGei-S the 512-d embedding ``outputs[0]``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _perturb(module: torch.nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.dtype.is_floating_point:
                p.add_(0.05 * torch.randn(p.shape, generator=g))
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_(0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)


def _import_from(folder: Path, module: str):
    """Import ``module`` from ``folder``; the repositories share package names (``models``), so forget them after."""
    top = module.split(".")[0]

    def forget() -> None:
        for key in [k for k in sys.modules if k == top or k.startswith(top + ".")]:
            del sys.modules[key]

    forget()
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(folder))
        forget()


def _compare(ref: torch.Tensor, ours: torch.Tensor) -> tuple[float, float]:
    """(max |ref - ours|, mean |ref|)."""
    return (ref - ours).abs().max().item(), ref.abs().mean().item()


def _literal(path: Path, name: str):
    """A module-level literal assignment read with ast (the module is not imported)."""
    import ast

    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise KeyError(f"{name} not found in {path}")


def _timm_stand_in() -> None:
    try:
        import timm  # noqa: F401
        return
    except ImportError:
        pass
    layers = types.ModuleType("timm.models.layers")
    layers.drop_path = lambda x, p=0.0, training=False: x
    layers.to_2tuple = lambda x: (x, x)
    layers.trunc_normal_ = lambda t, mean=0.0, std=1.0, a=-2.0, b=2.0: torch.nn.init.trunc_normal_(t, mean, std, a, b)
    registry = types.ModuleType("timm.models.registry")
    registry.register_model = lambda fn: fn
    root = types.ModuleType("timm")
    models = types.ModuleType("timm.models")
    root.models, models.layers, models.registry = models, layers, registry
    sys.modules.update({"timm": root, "timm.models": models, "timm.models.layers": layers,
                        "timm.models.registry": registry})


def check_labram(repo: Path, out: Path) -> tuple[float, float]:
    import argparse as ap

    from bioxbridge_core.models.registry import load_encoder

    _timm_stand_in()
    pre = _import_from(repo, "modeling_pretrain").labram_base_patch200_1600_8k_vocab(init_values=0.1).eval()
    ft = _import_from(repo, "modeling_finetune").labram_base_patch200_200(
        num_classes=0, use_mean_pooling=False, init_values=0.1, qkv_bias=False, use_abs_pos_emb=True,
        use_rel_pos_bias=False).eval()
    _perturb(pre)
    torch.save({"model": pre.state_dict(), "args": ap.Namespace(lr=np.float64(5e-4))}, out / "labram-base.pth")
    student = {k[8:]: v for k, v in pre.state_dict().items()
               if k.startswith("student.") and "lm_head" not in k and "mask_token" not in k}
    ft.load_state_dict(student, strict=True)
    table = _literal(repo / "utils.py", "standard_1020")  # their utils.py imports far more than this table
    chans = ["FP1", "FP2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "F7", "F8", "T3", "T4", "T5", "T6",
             "FZ", "CZ", "PZ"]
    ad = load_encoder(f"labram:{out / 'labram-base.pth'}", device="cpu", ch_names=chans)
    x = 30 * torch.randn(2, 19, 2000)
    with torch.no_grad():
        ref = ft.forward_features((x / 100).reshape(2, 19, 10, 200),
                                  input_chans=[0] + [table.index(c) + 1 for c in chans], return_all_tokens=True)
        return _compare(ref, ad(x))


def check_biot(repo: Path, out: Path) -> tuple[float, float]:
    from bioxbridge_core.models.registry import load_encoder

    ref = _import_from(repo, "model.biot").BIOTEncoder(n_channels=18).eval()
    _perturb(ref)
    torch.save(ref.state_dict(), out / "EEG-six-datasets-18-channels.ckpt")
    ad = load_encoder(f"biot:{out / 'EEG-six-datasets-18-channels.ckpt'}", device="cpu")
    x = 40 * torch.randn(2, 18, 2000)
    xn = x.numpy() / (np.quantile(np.abs(x.numpy()), q=0.95, method="linear", axis=-1, keepdims=True) + 1e-8)
    with torch.no_grad():
        return _compare(ref(torch.from_numpy(xn).float()), ad(x).mean(dim=1))


def check_cbramod(repo: Path, out: Path) -> tuple[float, float]:
    from bioxbridge_core.models.registry import load_encoder

    ref = _import_from(repo, "models.cbramod").CBraMod().eval()
    _perturb(ref)
    torch.save(ref.state_dict(), out / "pretrained_weights.pth")
    ad = load_encoder(f"cbramod:{out / 'pretrained_weights.pth'}", device="cpu")
    x = 30 * torch.randn(2, 19, 2000)
    with torch.no_grad():
        r = ref.encoder(ref.patch_embedding((x / 100).reshape(2, 19, 10, 200)))  # proj_out -> Identity downstream
        return _compare(r, ad(x).reshape(2, 19, 10, 200))


def check_papagei(repo: Path, out: Path) -> tuple[float, float]:
    from bioxbridge_core.models.registry import load_encoder

    cls = _import_from(repo, "models.resnet").ResNet1DMoE
    ref = cls(in_channels=1, base_filters=32, kernel_size=3, stride=2, groups=1, n_block=18, n_classes=512,
              n_experts=3).eval()
    _perturb(ref)
    torch.save({f"module.{k}": v for k, v in ref.state_dict().items()}, out / "papagei_s.pt")
    ad = load_encoder(f"papagei:{out / 'papagei_s.pt'}", device="cpu")
    x = torch.randn(3, 1, 1250)
    with torch.no_grad():
        return _compare(ref(x)[0], ad(x).mean(dim=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in ("labram", "biot", "cbramod", "papagei"):
        parser.add_argument(f"--{name}", type=Path, help=f"clone of the published {name} repository")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    checks = {"labram": check_labram, "biot": check_biot, "cbramod": check_cbramod, "papagei": check_papagei}
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in checks.items():
            repo = getattr(args, name)
            if repo is not None:
                diff, scale = fn(repo.expanduser(), Path(tmp))
                print(f"{name}: max abs difference {diff:.2e} (outputs' mean magnitude {scale:.3g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
