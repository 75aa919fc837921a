"""network/outputs.py: SegOutput(aux, main) behaves like the original's [dsn, main] list, and survives
tracing, torch.compile and ONNX export."""
import pytest
import torch
from torch import nn

from network import SegOutput, as_seg_output, main_output


class TwoHeads(nn.Module):
    """aux = 2x, main = 3x the input's first channel (known values to check which is which)."""

    def forward(self, x):
        return SegOutput(2 * x[:, :1], 3 * x[:, :1])


def test_tuple_behaviour_in_the_originals_order():
    aux, main = torch.zeros(1), torch.ones(1)
    out = SegOutput(aux, main)
    assert isinstance(out, tuple) and len(out) == 2
    assert out[0] is aux and out[-1] is main and out[1] is main
    a, m = out
    assert a is aux and m is main and list(out) == [aux, main]
    assert out.aux is aux and out.main is main
    assert SegOutput._fields == ("aux", "main")


def test_main_output_by_name():
    aux, main = torch.zeros(1), torch.ones(1)
    assert main_output(SegOutput(aux, main)) is main
    assert main_output([aux, main]) is main            # the original's list
    assert main_output(main) is main                   # a model without an auxiliary head
    with pytest.raises(TypeError, match="SegOutput"):
        main_output([aux, main, main])


def test_as_seg_output():
    aux, main = torch.zeros(1), torch.ones(1)
    out = SegOutput(aux, main)
    assert as_seg_output(out) is out
    pair = as_seg_output((aux, main))
    assert isinstance(pair, SegOutput) and pair.aux is aux and pair.main is main
    with pytest.raises(TypeError, match="CriterionDSN expects SegOutput"):
        as_seg_output(main, "CriterionDSN")


def test_torch_compile_keeps_the_named_tuple():
    model, x = TwoHeads(), torch.randn(1, 2, 3, 4)
    out = torch.compile(model, backend="eager", fullgraph=True)(x)
    assert isinstance(out, SegOutput)
    torch.testing.assert_close(out.aux, 2 * x[:, :1])
    torch.testing.assert_close(out.main, 3 * x[:, :1])


def test_export_keeps_the_order(tmp_path):
    x = torch.randn(1, 2, 3, 4)
    exported = torch.export.export(TwoHeads(), (x,))
    out = exported.module()(x)
    torch.testing.assert_close(out[0], 2 * x[:, :1])
    torch.testing.assert_close(out[1], 3 * x[:, :1])


def test_onnx_graph_outputs_are_aux_then_main(tmp_path):
    onnx = pytest.importorskip("onnx")
    path = tmp_path / "two_heads.onnx"
    torch.onnx.export(TwoHeads().eval(), (torch.randn(1, 2, 3, 4),), str(path),
                      output_names=["aux", "main"], dynamo=False)
    graph = onnx.load(str(path)).graph
    assert [o.name for o in graph.output] == ["aux", "main"]
    # the main output is the 3x branch: follow its Mul node's constant
    consts = {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer}
    consts.update({n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t)
                   for n in graph.node if n.op_type == "Constant"})
    producer = {n.output[0]: n for n in graph.node}
    factors = {name: [float(consts[i]) for i in producer[name].input if i in consts]
               for name in ("aux", "main")}
    assert factors == {"aux": [2.0], "main": [3.0]}
