"""MAC counts against hand-computed answers (fvcore conventions, see taskgroup.profile.macs)."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("fvcore")

from torch import nn  # noqa: E402

from taskgroup.models import create_model  # noqa: E402
from taskgroup.models.xception import SeparableConv  # noqa: E402
from taskgroup.presets import get_arch_preset  # noqa: E402
from taskgroup.profile.macs import component_macs, count_macs  # noqa: E402


# Hand formulas: one multiply-add per weight element per output position (bias not counted).
def conv(cin, cout, k, hw_out, groups=1):
    return (cin // groups) * cout * k * k * hw_out * hw_out


def bn(c, hw):  # eval batch norm with affine: 2 per element (fvcore)
    return 2 * c * hw * hw


def sep(cin, cout, hw_out):  # depthwise 3x3 + pointwise 1x1 + BN (+ ReLU, not counted)
    return conv(cin, cin, 3, hw_out, groups=cin) + conv(cin, cout, 1, hw_out) + bn(cout, hw_out)


def test_plain_conv_3_to_4_3x3_on_8x8():
    m = count_macs(nn.Conv2d(3, 4, 3, padding=1), torch.rand(1, 3, 8, 8))
    assert m.macs == 3 * 4 * 9 * 64 == 6912
    assert m.by_operator == {"conv": 6912}  # the bias is not counted
    assert m.params == 3 * 4 * 9 + 4


def test_batch_counts_linearly():
    assert count_macs(nn.Conv2d(3, 4, 3, padding=1), torch.rand(2, 3, 8, 8)).macs == 2 * 6912


def test_separable_unit():
    m = count_macs(SeparableConv(4, 8), torch.rand(1, 4, 8, 8))
    depthwise = 4 * 9 * 64  # groups=cin: weight (4, 1, 3, 3)
    pointwise = 4 * 8 * 64
    batchnorm = 2 * 8 * 64
    assert m.by_operator == {"conv": depthwise + pointwise, "batch_norm": batchnorm}
    assert m.macs == 2304 + 2048 + 1024 == 5376


def test_strided_depthwise_counts_output_positions():
    m = count_macs(nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False), torch.rand(1, 8, 16, 16))
    assert m.macs == 8 * 9 * 8 * 8


def test_nearest_upsample_counts_one_per_output_element():
    m = count_macs(nn.Upsample(scale_factor=2, mode="nearest"), torch.rand(1, 4, 4, 4))
    assert m.macs == 4 * 8 * 8


def test_relu_and_residual_add_are_not_counted():
    class AddRelu(nn.Module):
        def forward(self, x):
            return torch.relu(x + x)

    assert count_macs(AddRelu(), torch.rand(1, 4, 8, 8)).macs == 0


def test_tiny_network_trunk_and_head_layer_by_layer():
    p = get_arch_preset("tiny")
    assert p.model_config == dict(stem_channels=8, stage_channels=(8, 16, 16), decoder_channels=(8, 8, 8),
                                  blocks_per_stage=1) and p.resolution == 16
    model = create_model(p.model, ["normal", "segment_semantic"], 1.0, **p.model_config)
    trunk, heads = component_macs(model, torch.rand(1, 3, 16, 16))
    # Trunk: stem conv 3->8 stride 2 (16 -> 8) + BN; stage 8->8 stride 2 (8 -> 4) with a strided
    # 1x1 shortcut + BN; stage 8->16 stride 2 (4 -> 2) with shortcut; stage 16->16 stride 1 (identity).
    expected_trunk = (
        conv(3, 8, 3, 8) + bn(8, 8)
        + sep(8, 8, 4) + conv(8, 8, 1, 4) + bn(8, 4)
        + sep(8, 16, 2) + conv(8, 16, 1, 2) + bn(16, 2)
        + sep(16, 16, 2)
    )
    # = (13824 + 1024) + (1152 + 1024 + 256 + 1024 + 256) + (288 + 512 + 128 + 512 + 128) + (576 + 1024 + 128)
    assert trunk.macs == expected_trunk == 21856
    # Head: three (nearest upsample x2, separable unit) steps 2 -> 4 -> 8 -> 16, then a 1x1 conv.
    def head(c_out):
        return (16 * 4 * 4 + sep(16, 8, 4) + 8 * 8 * 8 + sep(8, 8, 8) + 8 * 16 * 16 + sep(8, 8, 16)
                + conv(8, c_out, 1, 16))

    assert heads["normal"].macs == head(3)
    assert heads["segment_semantic"].macs == head(8)
    # The whole network is exactly trunk + heads.
    whole = count_macs(model, torch.rand(1, 3, 16, 16)).macs
    assert whole == trunk.macs + heads["normal"].macs + heads["segment_semantic"].macs


def test_half_width_costs_less_and_more_heads_cost_more():
    p = get_arch_preset("default")
    x = torch.rand(1, 3, p.resolution, p.resolution)
    full_t, full_h = component_macs(create_model(p.model, ["normal", "depth_zbuffer"], 1.0, **p.model_config), x)
    half_t, half_h = component_macs(create_model(p.model, ["normal", "depth_zbuffer"], 0.5, **p.model_config), x)
    assert half_t.macs < full_t.macs and half_t.params < full_t.params
    assert all(half_h[t].macs < full_h[t].macs for t in full_h)
    one = full_t.macs + full_h["normal"].macs
    two = one + full_h["depth_zbuffer"].macs
    assert two > one


def upsample(c, hw_out):  # nearest x2: one per output element
    return c * hw_out * hw_out


@pytest.mark.parametrize("width, trunk_macs, head_macs", [
    # width 1.0: the paper's channels 32, 64, 128, 256, 728 and decoders 256, 128, 96, 64
    (1.0, 309_756_416, {"normal": 264_138_752, "segment_semantic": 269_381_632}),
    # width 0.5: every count halved and rounded to a multiple of 4 (16, 32, 64, 128, 364; 128, 64, 48, 32)
    (0.5, 81_349_888, {"normal": 74_004_480, "segment_semantic": 76_625_920}),
])
def test_gpu_preset_trunk_and_heads_layer_by_layer(width, trunk_macs, head_macs):
    from taskgroup.models.xception import scaled

    p = get_arch_preset("gpu")
    assert p.resolution == 128 and p.model_config == dict(
        stem_channels=32, stage_channels=(64, 128, 256, 728, 728, 728), stage_strides=(1, 2, 2, 2, 1, 1),
        blocks_per_stage=2, decoder_channels=(256, 128, 96, 64))
    c = {n: scaled(n, width) for n in (32, 64, 128, 256, 728, 96)}
    model = create_model(p.model, ["normal", "segment_semantic"], width, **p.model_config)
    trunk, heads = component_macs(model, torch.rand(1, 3, 128, 128))
    # Stem conv stride 2 (128 -> 64); stage 32->64 at 64x64 (stride 1, 1x1 shortcut: channels change);
    # strided stages 64->128 (32x32), 128->256 (16x16), 256->728 (8x8); two 728->728 stages at 8x8
    # with identity shortcuts.
    expected_trunk = (
        conv(3, c[32], 3, 64) + bn(c[32], 64)
        + sep(c[32], c[64], 64) + sep(c[64], c[64], 64) + conv(c[32], c[64], 1, 64) + bn(c[64], 64)
        + sep(c[64], c[128], 32) + sep(c[128], c[128], 32) + conv(c[64], c[128], 1, 32) + bn(c[128], 32)
        + sep(c[128], c[256], 16) + sep(c[256], c[256], 16) + conv(c[128], c[256], 1, 16) + bn(c[256], 16)
        + sep(c[256], c[728], 8) + sep(c[728], c[728], 8) + conv(c[256], c[728], 1, 8) + bn(c[728], 8)
        + 2 * (sep(c[728], c[728], 8) + sep(c[728], c[728], 8))
    )
    assert trunk.macs == expected_trunk == trunk_macs

    # Head: four (nearest upsample x2, separable unit) steps 8 -> 16 -> 32 -> 64 -> 128, then a 1x1 conv.
    def head(c_out):
        return (upsample(c[728], 16) + sep(c[728], c[256], 16) + upsample(c[256], 32) + sep(c[256], c[128], 32)
                + upsample(c[128], 64) + sep(c[128], c[96], 64) + upsample(c[96], 128) + sep(c[96], c[64], 128)
                + conv(c[64], c_out, 1, 128))

    assert {t: m.macs for t, m in heads.items()} == {"normal": head(3), "segment_semantic": head(8)} == head_macs
    assert trunk.macs + heads["normal"].macs == count_macs(model.with_heads(["normal"]),
                                                           torch.rand(1, 3, 128, 128)).macs
