"""scripts/demo_data.py: writes the synthetic set once, regenerates when the request changes."""
import os

from scripts import demo_data


def test_generate_then_reuse(tmp_path, capsys):
    root = str(tmp_path / "syn")
    demo_data.main([root, "--n-train", "2", "--n-val", "1", "--n-test", "1", "--size", "32,64"])
    assert "wrote 2/1/1" in capsys.readouterr().out
    lines = open(os.path.join(root, "train.lst")).read().splitlines()
    assert len(lines) == 2 and all(os.path.isfile(os.path.join(root, p)) for p in lines[0].split("\t"))
    demo_data.main([root, "--n-train", "2", "--n-val", "1", "--n-test", "1", "--size", "32,64"])
    assert "already" in capsys.readouterr().out
    demo_data.main([root, "--n-train", "3", "--n-val", "1", "--n-test", "1", "--size", "32,64"])
    assert "wrote 3/1/1" in capsys.readouterr().out
