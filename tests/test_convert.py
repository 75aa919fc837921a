"""Checkpoint importers: exact sssegmentation / mmseg key names load; round trips are exact."""
import ast
from pathlib import Path

import pytest
import torch

from network.ocrnet import build_ocrnet
from utils.convert import (detect_format, export_state_dict, extract_model_state, import_checkpoint,
                           import_state_dict)

KEYS_DIR = Path(__file__).parent / "data" / "ssseg_ocrnet_keys"  # recorded sssegmentation key lists
KEY_FILES = {"resnet50": "resnet50os8.txt", "resnet101": "resnet101os8.txt",
             "hrnetv2_w18s": "hrnetv2w18s.txt", "hrnetv2_w18": "hrnetv2w18.txt",
             "hrnetv2_w48": "hrnetv2w48.txt"}


def _tensor(shape, gen, key):
    if key.endswith("num_batches_tracked"):
        return torch.tensor(7)
    if key.endswith("running_var"):
        return torch.rand(shape, generator=gen) + 0.5
    return torch.randn(shape, generator=gen) * 0.05


def _ssseg_state(backbone, seed=0):
    """A synthetic sssegmentation checkpoint: the exact key names and shapes of the key list."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for line in (KEYS_DIR / KEY_FILES[backbone]).read_text().splitlines():
        k, s = line.split("\t")
        state[k] = _tensor(tuple(ast.literal_eval(s)), gen, k)
    return state


def _mmseg_head_shapes(cin, aux_in, aux_ch, aux_k, k):
    """mmseg OCRNet head names (FCNHead decode_head.0 + OCRHead decode_head.1)."""
    def cm(prefix, i, o, ks=1):   # ConvModule: conv (no bias) + bn
        return {f"{prefix}.conv.weight": (o, i, ks, ks), **{f"{prefix}.bn.{n}": (o,) for n in (
            "weight", "bias", "running_mean", "running_var")}, f"{prefix}.bn.num_batches_tracked": ()}
    ocb = "decode_head.1.object_context_block"
    shapes = {**cm("decode_head.0.convs.0", aux_in, aux_ch, aux_k),
              "decode_head.0.conv_seg.weight": (k, aux_ch, 1, 1), "decode_head.0.conv_seg.bias": (k,),
              **cm("decode_head.1.bottleneck", cin, 512, 3),
              **cm(f"{ocb}.query_project.0", 512, 256), **cm(f"{ocb}.query_project.1", 256, 256),
              **cm(f"{ocb}.key_project.0", 512, 256), **cm(f"{ocb}.key_project.1", 256, 256),
              **cm(f"{ocb}.value_project", 512, 256), **cm(f"{ocb}.out_project", 256, 512),
              **cm(f"{ocb}.bottleneck", 1024, 512),
              "decode_head.1.conv_seg.weight": (k, 512, 1, 1), "decode_head.1.conv_seg.bias": (k,)}
    return shapes


def _mmseg_state(backbone, k=21, seed=0):
    gen = torch.Generator().manual_seed(seed)
    state = {"backbone." + key[len("backbone_net."):]: v for key, v in _ssseg_state(backbone, seed).items()
             if key.startswith("backbone_net.")}
    hr = backbone.startswith("hrnet")
    cin = (720 if backbone == "hrnetv2_w48" else 270) if hr else 2048
    head = _mmseg_head_shapes(cin, cin if hr else 1024, cin if hr else 256, 1 if hr else 3, k)
    state.update({key: _tensor(s, gen, key) for key, s in head.items()})
    return state


def _same_outputs(a, b, size=64):
    a.eval(), b.eval()
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        for ya, yb in zip(a(x), b(x)):
            assert torch.equal(ya, yb)


@pytest.mark.parametrize("backbone", ["hrnetv2_w18s", "resnet50"])
def test_ssseg_checkpoint_loads_exactly(backbone):
    state = _ssseg_state(backbone)
    ckpt = {"model": state, "optimizer": {"lr": 0.01}, "cur_epoch": 3, "cur_iter": 100}
    model = build_ocrnet(backbone, 21)
    report = import_state_dict(model, ckpt)
    assert report.fmt == "ssseg" and report.ok and not report.unexpected and not report.missing
    assert len(report.mapped) == len(state)
    ours = model.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in state.items())


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["hrnetv2_w18", "hrnetv2_w48", "resnet101"])
def test_ssseg_checkpoint_loads_big(backbone):
    report = import_state_dict(build_ocrnet(backbone, 21), {"model": _ssseg_state(backbone)})
    assert report.ok and not report.unexpected and not report.missing


@pytest.mark.parametrize("backbone", ["hrnetv2_w18s", "resnet50"])
def test_mmseg_checkpoint_loads_into_mmseg_preset(backbone):
    state = _mmseg_state(backbone)
    model = build_ocrnet(backbone, 21, preset="mmseg")
    report = import_state_dict(model, {"meta": {}, "state_dict": state})
    assert report.fmt == "mmseg" and report.ok and not report.unexpected and not report.missing
    ours = model.state_dict()
    assert torch.equal(ours["object_context_block.query_project.1.0.weight"],
                       state["decode_head.1.object_context_block.query_project.1.conv.weight"])
    assert torch.equal(ours["auxiliary_decoder.4.bias"], state["decode_head.0.conv_seg.bias"])
    assert torch.equal(ours["decoder.1.weight"], state["decode_head.1.conv_seg.weight"])
    assert torch.equal(ours["backbone_net.layer1.0.conv1.weight"],
                       state["backbone.layer1.0.conv1.weight"])


def test_mmseg_into_ssseg_preset_reports_what_did_not_fit():
    model = build_ocrnet("hrnetv2_w18s", 21, preset="ssseg")
    report = import_state_dict(model, _mmseg_state("hrnetv2_w18s"))
    bad = {k: why for k, _, _, why in report.mismatched}
    assert "object_context_block.bottleneck.0.weight" in bad and "preset" in bad[
        "object_context_block.bottleneck.0.weight"]
    assert "auxiliary_decoder.0.weight" in bad and not report.ok
    assert "stem_relu" in report.summary() and "did not fit" in report.summary()
    with pytest.raises(ValueError, match="does not fit"):
        import_state_dict(model, _mmseg_state("hrnetv2_w18s"), strict=True)


def _randomise(model, seed):
    gen = torch.Generator().manual_seed(seed)
    state = {k: (_tensor(tuple(v.shape), gen, k) if v.is_floating_point() else v)
             for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    return model


@pytest.mark.parametrize("backbone,preset,fmt", [("hrnetv2_w18s", "ssseg", "ssseg"),
                                                  ("hrnetv2_w18s", "mmseg", "mmseg"),
                                                  ("resnet50", "mmseg", "mmseg")])
def test_round_trip_is_exact(backbone, preset, fmt):
    src = _randomise(build_ocrnet(backbone, 5, preset=preset), 1)
    exported = export_state_dict(src, fmt)
    assert detect_format(exported) == fmt
    if fmt == "mmseg":
        assert "decode_head.1.object_context_block.value_project.conv.weight" in exported
    dst = build_ocrnet(backbone, 5, preset=preset)
    report = import_state_dict(dst, exported, fmt=fmt)
    assert report.ok and not report.unexpected
    _same_outputs(src, dst)


def test_original_ocnet_snapshot_with_module_prefix(tmp_path):
    import network
    src = _randomise(network.get_segmentation_model("resnet101_base_oc_dsn", num_classes=3), 2)
    path = tmp_path / "CS_scenes_10.pth"
    torch.save({"module." + k: v for k, v in src.state_dict().items()}, path)
    dst = network.get_segmentation_model("resnet101_base_oc_dsn", num_classes=3)
    report = import_checkpoint(dst, str(path))
    assert report.fmt == "ocnet" and report.ok and not report.unexpected
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))


def test_bad_checkpoints():
    with pytest.raises(ValueError, match="no state_dict"):
        extract_model_state({"model": {"a": 1}})
    with pytest.raises(ValueError, match="format"):
        import_state_dict(build_ocrnet("hrnetv2_w18s", 3), {"x": torch.zeros(1)}, fmt="paddle")


def test_convert_script(tmp_path, capsys):
    from scripts.convert_checkpoint import main
    from utils.checkpoint import load_checkpoint
    src = tmp_path / "ssseg.pth"
    torch.save({"model": _ssseg_state("hrnetv2_w18s"), "cur_epoch": 60}, src)
    out = tmp_path / "ours.pth"
    assert main([str(src), str(out), "--network", "hrnetv2_w18s", "--num-classes", "21"]) == 0
    assert "mapped 922 tensors" in capsys.readouterr().out
    load_checkpoint(build_ocrnet("hrnetv2_w18s", 21), str(out))          # strict load works
    # wrong class count: reported, not written
    assert main([str(src), str(tmp_path / "x.pth"), "--network", "hrnetv2_w18s",
                 "--num-classes", "150"]) == 1
    assert "number of classes" in capsys.readouterr().out and not (tmp_path / "x.pth").exists()


def test_convert_script_reads_the_file_once_and_reports_bad_files(tmp_path, capsys, monkeypatch):
    from scripts.convert_checkpoint import main
    from utils.cli import run_main
    src = tmp_path / "ssseg.pth"
    torch.save({"model": _ssseg_state("hrnetv2_w18s"), "cur_epoch": 60}, src)
    calls = []
    real_load = torch.load

    def counting_load(*a, **kw):
        calls.append(a[0])
        return real_load(*a, **kw)
    monkeypatch.setattr(torch, "load", counting_load)
    assert main([str(src), str(tmp_path / "out.pth"), "--network", "hrnetv2_w18s", "--num-classes", "21"]) == 0
    assert calls == [str(src)]
    monkeypatch.undo()
    monkeypatch.delenv("OCNET_DEBUG", raising=False)
    (tmp_path / "notes.txt").write_text("hello\n")
    capsys.readouterr()
    assert run_main(lambda: main([str(tmp_path / "notes.txt"), str(tmp_path / "x.pth"), "--network",
                                  "hrnetv2_w18s", "--num-classes", "21"])) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("ERROR: checkpoint ") and "not a PyTorch checkpoint" in err[0] and len(err) == 2
