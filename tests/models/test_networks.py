import math

import pytest
import torch

from deepclust.models.networks import build_network
from deepclust.models.networks.mlp import ClusterModel, DenseAutoencoder


def linears(module):
    return [m for m in module.modules() if isinstance(m, torch.nn.Linear)]


def test_default_architecture_is_d_500_500_2000_10_with_linear_ends():
    ae = DenseAutoencoder(784, [500, 500, 2000], 10)
    shapes = [(m.in_features, m.out_features) for m in linears(ae)]
    assert shapes == [(784, 500), (500, 500), (500, 2000), (2000, 10),
                      (10, 2000), (2000, 500), (500, 500), (500, 784)]
    # ReLU between layers, none after the embedding or the output.
    assert not isinstance(ae.encoder[-1], torch.nn.ReLU) and not isinstance(ae.decoder[-1], torch.nn.ReLU)
    assert sum(isinstance(m, torch.nn.ReLU) for m in ae.modules()) == 6
    z, x_hat = ae(torch.rand(3, 784))
    assert z.shape == (3, 10) and x_hat.shape == (3, 784)


@pytest.mark.parametrize("init,bound", [
    ("glorot_uniform", lambda i, o: math.sqrt(6 / (i + o))),
    ("variance_scaling", lambda i, o: math.sqrt(1 / i)),
])
def test_keras_initialisations_and_zero_bias(init, bound):
    torch.manual_seed(0)
    ae = DenseAutoencoder(256, [500, 100], 10, init)
    for layer in linears(ae):
        b = bound(layer.in_features, layer.out_features)
        w = layer.weight.detach()
        assert w.abs().max() <= b and w.abs().max() > 0.95 * b  # uniform on ±b, fills the range
        assert w.std().item() == pytest.approx(b / math.sqrt(3), rel=0.05)
        assert torch.count_nonzero(layer.bias) == 0


def test_unknown_init_is_an_error():
    with pytest.raises(ValueError, match="unknown init"):
        DenseAutoencoder(4, [3], 2, "he_normal")


def test_spec_rebuilds_the_same_architecture():
    model = ClusterModel(DenseAutoencoder(20, [8, 6], 3), 5, 3, alpha=0.5)
    rebuilt = ClusterModel.from_spec(model.spec)
    assert rebuilt.spec == model.spec
    rebuilt.load_state_dict(model.state_dict())
    x = torch.randn(7, 20)
    torch.testing.assert_close(rebuilt(x), model(x), rtol=0, atol=0)
    with pytest.raises(ValueError, match="unknown network type 'no-such-net'"):
        build_network({"type": "no-such-net"})
