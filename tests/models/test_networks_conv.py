"""The convolutional autoencoders of the image methods: layouts, shapes, sizes, batch-norm, specs."""
import json
import math

import pytest
import torch
from torch import nn

from deepclust.models.networks.conv import batch_norm1d, batch_norm2d, check_image_shape, image_networks
from deepclust.models.networks.dac import DACAutoencoder
from deepclust.models.networks.dcec_cae import DCECAutoencoder
from deepclust.models.networks.decs_cae import DECSAutoencoder

SIZES = [16, 28, 32]
CHANNELS = [1, 3]


NARROW = {DECSAutoencoder: [4, 4, 8, 8], DCECAutoencoder: [4, 4, 8]}  # same layout, fewer channels


def build(kind, channels, side, narrow=False, **kw):
    if narrow and kind in NARROW:
        kw.setdefault("filters", NARROW[kind])
    if kind is DACAutoencoder:
        return DACAutoencoder(channels, side, side, n_clusters=kw.pop("n_clusters", 10), **kw)
    return kind(channels, side, side, **kw)


@pytest.mark.parametrize("side", SIZES)
@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("kind", [DECSAutoencoder, DCECAutoencoder, DACAutoencoder])
def test_round_trip_shapes(kind, channels, side):
    torch.manual_seed(0)
    net = build(kind, channels, side, narrow=True)
    x = torch.rand(5, channels, side, side)
    for mode in (net.train, net.eval):
        mode()
        z, x_hat = net(x)
        assert z.shape == (5, net.embedding_dim)
        assert x_hat.shape == x.shape
        torch.testing.assert_close(net.decode(net.encode(x)), x_hat)
    # Flattened rows (B, C·H·W) are the same images.
    torch.testing.assert_close(net.encode(x.flatten(1)), net.encode(x))


@pytest.mark.parametrize("side,code", [(16, (256, 2, 2)), (28, (256, 1, 1)), (32, (256, 4, 4)), (36, (256, 2, 2))])
def test_decs_encoder_follows_the_code_layout(side, code):
    """16 → 8 → 4 → 2 ('same' 4th conv); 28 → 14 → 7 → 3 → 1 ('valid'); the decoder seeds at side // 8."""
    net = DECSAutoencoder(1, side, side)
    assert net.encoder_conv(torch.rand(2, 1, side, side)).shape[1:] == code
    assert net.embedding.in_features == math.prod(code) and net.embedding_dim == 10
    assert net.decoder_dense[0].out_features == 256 * (side // 8) ** 2
    convs = [m for m in net.encoder_conv if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(32, (3, 3), (1, 1)), (64, (3, 3), (1, 1)),
                                                                         (128, (3, 3), (1, 1)), (256, (3, 3), (1, 1))]
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.encoder_conv) == 3


def test_decs_batch_norm_comes_after_the_relu_with_keras_settings():
    net = DECSAutoencoder(1, 16, 16)
    for seq in (net.encoder_conv, net.decoder_conv):
        layers = list(seq)
        for i, m in enumerate(layers):
            if isinstance(m, nn.BatchNorm2d):
                assert isinstance(layers[i - 1], nn.ReLU) and isinstance(layers[i - 2], (nn.Conv2d, nn.ConvTranspose2d))
                assert m.momentum == pytest.approx(0.01) and m.eps == pytest.approx(1e-3)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 7
    # The output layer is linear.
    assert isinstance(net.decoder_conv[-1], nn.ConvTranspose2d)


@pytest.mark.parametrize("side,code", [(16, (128, 2, 2)), (28, (128, 3, 3)), (32, (128, 4, 4)), (12, (128, 1, 1))])
def test_dcec_layout_without_batch_norm(side, code):
    net = DCECAutoencoder(1, side, side)
    assert net.encoder_conv(torch.rand(2, 1, side, side)).shape[1:] == code
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in net.modules())
    convs = [m for m in net.encoder_conv if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [(32, 5, 2), (64, 5, 2), (128, 3, 2)]
    assert net.decoder_dense[0].out_features == 128 * (side // 8) ** 2


def _sides_through(seq, x):
    sides = []
    for m in seq:
        x = m(x)
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            sides.append(tuple(x.shape[1:]))
    return sides


@pytest.mark.parametrize("side,enc,dec", [
    (28, [14, 7, 4, 2], [4, 7, 14, 28]),
    (32, [16, 8, 4, 2], [4, 8, 16, 32]),
])
def test_dac_table3_layout_mirrors_the_encoder(side, enc, dec):
    net = DACAutoencoder(3, side, side, n_clusters=10).eval()
    x = torch.rand(2, 3, side, side)
    assert _sides_through(net.encoder_conv, x) == [(c, s, s) for c, s in zip([8, 16, 32, 64], enc)]
    code = net.encoder_conv(x)
    assert _sides_through(net.decoder_conv, code) == [(c, s, s) for c, s in zip([32, 16, 8, 3], dec)]
    assert net.embedding_dim == 256
    # Conv → BN → ReLU in the encoder, ConvT → BN → ReLU in the decoder but a linear last layer.
    layers = list(net.encoder_conv)
    for i, m in enumerate(layers):
        if isinstance(m, nn.BatchNorm2d):
            assert isinstance(layers[i - 1], nn.Conv2d) and isinstance(layers[i + 1], nn.ReLU)
    assert isinstance(net.decoder_conv[-1], nn.ConvTranspose2d)
    linears = [m for m in net.head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(256, 64), (64, 10)]
    assert all(isinstance(m, kind) for m, kind in zip(net.head, [nn.Linear, nn.BatchNorm1d, nn.ReLU] * 2))
    assert len(net.head) == 6


def test_dac_head_gives_probabilities_from_the_shared_code():
    torch.manual_seed(0)
    net = DACAutoencoder(1, 28, 28, n_clusters=4)
    z, _ = net(torch.rand(16, 1, 28, 28))
    p = net.cluster_probs(z)
    assert p.shape == (16, 4) and (p >= 0).all()
    torch.testing.assert_close(p.sum(1), torch.ones(16))
    # The softmax reads ReLU outputs (the table's "BN Relu Softmax"): logits are never negative.
    logits = net.head(net.head_input(z))
    assert (logits >= 0).all() and (logits == 0).any()
    torch.testing.assert_close(p, torch.softmax(logits, 1))
    # Gradients reach the encoder through the head.
    net.cluster_probs(net.encode(torch.rand(8, 1, 28, 28)))[:, 0].sum().backward()
    assert net.encoder_conv[0].weight.grad.abs().sum() > 0


def test_dac_stl10_layout_pools_the_code_for_the_head():
    net = DACAutoencoder(3, 96, 96, n_clusters=10, layout="stl10").eval()
    x = torch.rand(2, 3, 96, 96)
    assert [s[1] for s in _sides_through(net.encoder_conv, x)] == [24, 12, 6, 3, 3]
    assert [s[1] for s in _sides_through(net.decoder_conv, net.encoder_conv(x))] == [6, 12, 24, 48, 96]
    assert net.embedding_dim == 256 * 9 and net.head[0].in_features == 256
    z, x_hat = net(x)
    assert x_hat.shape == x.shape and net.cluster_probs(z).shape == (2, 10)


@pytest.mark.parametrize("kind", [DECSAutoencoder, DCECAutoencoder, DACAutoencoder])
def test_keras_initialisation(kind):
    torch.manual_seed(0)
    net = build(kind, 1, 16)
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            fan_a, fan_b = nn.init._calculate_fan_in_and_fan_out(m.weight)
            bound = math.sqrt(6 / (fan_a + fan_b))
            assert m.weight.abs().max() <= bound + 1e-7
            assert torch.count_nonzero(m.bias) == 0


@pytest.mark.parametrize("kind", [DECSAutoencoder, DACAutoencoder])
def test_batch_norm_uses_batch_statistics_in_train_mode_only(kind):
    torch.manual_seed(0)
    net = build(kind, 1, 16, **({"n_clusters": 3} if kind is DACAutoencoder else {}))
    x = torch.rand(8, 1, 16, 16)
    net.train()
    before = [m.running_mean.clone() for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    z_batch = net.encode(x)
    after = [m.running_mean for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert any(not torch.equal(a, b) for a, b in zip(before, after))  # running stats moved
    # In train mode a sample's embedding depends on the rest of its batch ...
    assert not torch.allclose(z_batch[:4], net.encode(x[:4]))
    # ... in eval mode it does not, and running stats stay put.
    net.eval()
    frozen = [m.running_mean.clone() for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    torch.testing.assert_close(net.encode(x)[:4], net.encode(x[:4]))
    assert all(torch.equal(a, m.running_mean) for a, m in
               zip(frozen, [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]))


@pytest.mark.parametrize("net", [
    DECSAutoencoder(3, 28, 28, filters=[4, 8, 8, 16], embedding_dim=5),
    DCECAutoencoder(1, 16, 16, filters=[4, 8, 8], embedding_dim=3),
    DACAutoencoder(1, 28, 28, n_clusters=3, head_hidden=16),
    DECSAutoencoder(1, 16, 32),
], ids=["decs", "dcec", "dac", "decs-rect"])
def test_spec_is_json_and_rebuilds_the_same_network(net):
    spec = json.loads(json.dumps(net.spec))
    rebuilt = image_networks()[spec["type"]].from_spec(spec)
    assert rebuilt.spec == net.spec
    rebuilt.load_state_dict(net.state_dict())
    net.eval(), rebuilt.eval()
    x = torch.rand(3, *net.sample_shape)
    for a, b in zip(net(x), rebuilt(x)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="spec of type"):
        DCECAutoencoder.from_spec(DECSAutoencoder(1, 16, 16).spec)


def test_rectangular_images_pad_each_side_by_its_own_rule():
    net = DECSAutoencoder(1, 28, 16)  # 28 takes the 'valid' path, 16 the 'same' one
    assert net.encoder_conv(torch.rand(2, 1, 28, 16)).shape[1:] == (256, 1, 2)
    assert net(torch.rand(2, 1, 28, 16))[1].shape == (2, 1, 28, 16)
    assert DCECAutoencoder(3, 20, 32)(torch.rand(2, 3, 20, 32))[1].shape == (2, 3, 20, 32)


def test_accepted_sides():
    assert DECSAutoencoder.accepted_sides(64) == [8, 16, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 64]
    assert DCECAutoencoder.accepted_sides(32) == [8, 12, 16, 20, 24, 28, 32]
    assert DACAutoencoder.accepted_sides(10) == [8, 9, 10]
    # Every accepted side really round-trips.
    for kind in (DECSAutoencoder, DCECAutoencoder):
        for side in kind.accepted_sides(48):
            net = build(kind, 1, side, narrow=True)
            assert net(torch.rand(2, 1, side, side))[1].shape[-2:] == (side, side)


@pytest.mark.parametrize("network,shape,options,message", [
    ("decs_cae", (1, 55, 55), {}, r"DECS .*multiple of 8, or 4 more .* 28, 32, .*got 55×55"),
    ("decs_cae", (1, 20, 20), {}, r"got 20×20"),
    ("decs_cae", (3, 28, 30), {}, r"got 28×30"),
    ("dcec_cae", (1, 10, 10), {}, r"DCEC .*multiple of 4 from 8 up .*12, 16.*got 10×10"),
    ("dac_fcae", (1, 7, 7), {}, r"at least 8.*got 7×7"),
    ("dac_fcae", (3, 28, 28), {"layout": "stl10"}, r"layout 'stl10'.*at least 32.*got 28×28"),
    ("dac_fcae", (3, 32, 32), {"layout": "huge"}, r"unknown AE\+DAC layout"),
    ("decs_cae", (784,), {}, r"needs images \(channels, height, width\); got samples of shape \(784,\)"),
    ("decs_cae", (0, 16, 16), {}, r"at least one image channel"),
    ("resnet", (3, 32, 32), {}, r"unknown image network 'resnet'"),
])
def test_unsupported_sizes_are_value_errors_naming_the_sizes(network, shape, options, message):
    with pytest.raises(ValueError, match=message):
        check_image_shape(network, shape, **options)


@pytest.mark.parametrize("network,shape", [("decs_cae", (1, 28, 28)), ("decs_cae", (3, 32, 32)),
                                           ("dcec_cae", (1, 16, 16)), ("dac_fcae", (3, 32, 32))])
def test_supported_sizes_pass(network, shape):
    assert check_image_shape(network, shape) == shape
    assert check_image_shape("dac_fcae", (3, 96, 96), layout="stl10") == (3, 96, 96)


def test_constructors_refuse_what_they_cannot_build():
    with pytest.raises(ValueError, match="got 55×55"):
        DECSAutoencoder(1, 55, 55)
    with pytest.raises(ValueError, match="four conv layers"):
        DECSAutoencoder(1, 16, 16, filters=[8, 8])
    with pytest.raises(ValueError, match="at least 2 clusters"):
        DACAutoencoder(1, 16, 16, n_clusters=1)
    net = DECSAutoencoder(1, 16, 16)
    with pytest.raises(ValueError, match=r"built for images of shape \(1, 16, 16\)"):
        net.encode(torch.rand(2, 1, 28, 28))


def test_batch_norm_takes_a_lone_value_per_channel_like_keras():
    """A training batch of one sample on a 1×1 map: PyTorch refuses it, Keras normalises the value
    by itself (zero variance), giving the shift β; the running stats move towards it and 0."""
    bn = batch_norm2d(3).train()
    with torch.no_grad():
        bn.bias.copy_(torch.tensor([0.5, -1.0, 2.0]))
    x = torch.tensor([[[[4.0]], [[-2.0]], [[0.0]]]], requires_grad=True)
    out = bn(x)
    torch.testing.assert_close(out, torch.tensor([[[[0.5]], [[-1.0]], [[2.0]]]]))
    torch.testing.assert_close(bn.running_mean, torch.tensor([0.04, -0.02, 0.0]))
    torch.testing.assert_close(bn.running_var, torch.full((3,), 0.99))
    assert int(bn.num_batches_tracked) == 1
    out.sum().backward()
    torch.testing.assert_close(bn.bias.grad, torch.ones(3))
    torch.testing.assert_close(x.grad, torch.zeros_like(x))
    # Two samples, or more than one value per channel, or eval mode: ordinary batch-norm.
    reference = torch.nn.BatchNorm1d(2, eps=1e-3, momentum=0.01).train()
    ours = batch_norm1d(2).train()
    y = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    torch.testing.assert_close(ours(y), reference(y))
    torch.testing.assert_close(ours.running_var, reference.running_var)
    torch.testing.assert_close(ours.eval()(y[:1]), reference.eval()(y[:1]))


@pytest.mark.parametrize("kind", [DECSAutoencoder, DACAutoencoder])
def test_a_training_batch_of_one_image_goes_through(kind):
    net = build(kind, 1, 28, narrow=True, **({"n_clusters": 3} if kind is DACAutoencoder else {})).train()
    z, x_hat = net(torch.rand(1, 1, 28, 28))
    assert x_hat.shape == (1, 1, 28, 28)
    if kind is DACAutoencoder:
        assert net.cluster_probs(z).shape == (1, 3)
