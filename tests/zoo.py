"""The model zoo: small, seeded, eval-mode models that every frontend and backend is tested on.

Each :class:`ZooEntry` builds a fresh model and fresh inputs on every call (the same ones each
time: everything is seeded), so a test may mutate what it gets.  ``tags`` say what a model
exercises ("conv", "recurrent", "attention", "state", "transformers", ...) so a test can pick.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    name: str
    make_model: Callable[[], nn.Module]
    make_inputs: Callable[[], tuple]
    tags: frozenset[str] = frozenset()

    def __repr__(self) -> str:  # short ids in pytest output
        return f"ZooEntry({self.name})"


def _seeded(fn: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        torch.manual_seed(0)
        return fn().eval()

    make.__name__ = getattr(fn, "__name__", "make")
    return make


def _inputs(fn: Callable[[], tuple]) -> Callable[[], tuple]:
    def make() -> tuple:
        g = torch.Generator().manual_seed(1)
        return fn(g)

    return make


# ---------------------------------------------------------------------------------------------
# plain torch models
# ---------------------------------------------------------------------------------------------


class MLP(nn.Module):
    def __init__(self, d_in: int = 16, hidden: int = 32, d_out: int = 8):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, d_out)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = torch.tanh(self.fc2(x))
        return torch.sigmoid(self.out(x))


class MLPBatchNormPReLU(nn.Module):
    """A small MLP with BatchNorm1d and PReLU (per-channel and single-slope)."""

    def __init__(self, d_in: int = 16, hidden: int = 32, d_out: int = 8):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.bn = nn.BatchNorm1d(hidden)
        self.act1 = nn.PReLU(hidden)
        self.fc2 = nn.Linear(hidden, d_out)
        self.act2 = nn.PReLU()
        g = torch.Generator().manual_seed(3)
        self.bn.running_mean.normal_(0, 0.1, generator=g)
        self.bn.running_var.uniform_(0.5, 1.5, generator=g)
        self.act1.weight.data.uniform_(0.0, 0.5, generator=g)

    def forward(self, x):
        return self.act2(self.fc2(self.act1(self.bn(self.fc1(x)))))


class SmallCNN(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(16 * 4 * 4, classes)

    def forward(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = torch.flatten(x, 1)
        return self.fc(x)


class BasicBlock(nn.Module):
    """ResNet's BasicBlock: two 3x3 convs with BatchNorm, identity or 1x1 downsample shortcut."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet18(nn.Module):
    """torchvision's resnet18 layout (stem, 4 stages of 2 BasicBlocks, avgpool, fc), with the
    channel widths divided by ``width_div`` to keep the tests fast."""

    def __init__(self, classes: int = 10, width_div: int = 8):
        super().__init__()
        w = [64 // width_div, 128 // width_div, 256 // width_div, 512 // width_div]
        self.inplanes = w[0]
        self.conv1 = nn.Conv2d(3, w[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(w[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(w[0], 2, 1)
        self.layer2 = self._make_layer(w[1], 2, 2)
        self.layer3 = self._make_layer(w[2], 2, 2)
        self.layer4 = self._make_layer(w[3], 2, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(w[3], classes)
        # non-trivial BatchNorm statistics, so eval-mode normalisation is actually tested
        g = torch.Generator().manual_seed(2)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
                m.weight.data.uniform_(0.5, 1.5, generator=g)
                m.bias.data.normal_(0, 0.1, generator=g)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(self.inplanes, planes, stride)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


class InceptionBlock(nn.Module):
    """GoogLeNet's Inception module: four parallel branches concatenated on channels."""

    def __init__(self, cin: int = 8):
        super().__init__()
        self.b1 = nn.Conv2d(cin, 4, 1)
        self.b2 = nn.Sequential(nn.Conv2d(cin, 4, 1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1))
        self.b3 = nn.Sequential(nn.Conv2d(cin, 2, 1), nn.ReLU(), nn.Conv2d(2, 4, 5, padding=2))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(cin, 4, 1))

    def forward(self, x):
        outs = [self.b1(x), self.b2(x), self.b3(x), self.b4(x)]
        return F.relu(torch.cat(outs, dim=1))


class DepthwiseSeparable(nn.Module):
    """MobileNet-style depthwise (groups=channels) + pointwise convolutions."""

    def __init__(self, cin: int = 8, cout: int = 16):
        super().__init__()
        self.dw1 = nn.Conv2d(cin, cin, 3, padding=1, groups=cin)
        self.pw1 = nn.Conv2d(cin, cout, 1)
        self.bn = nn.BatchNorm2d(cout)
        self.dw2 = nn.Conv2d(cout, cout, 3, stride=2, padding=1, groups=cout, bias=False)
        self.pw2 = nn.Conv2d(cout, cout, 1)

    def forward(self, x):
        x = F.relu6(self.bn(self.pw1(self.dw1(x))))
        return self.pw2(self.dw2(x))


class LSTMModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(8, 12, num_layers=2, batch_first=True)
        self.head = nn.Linear(12, 4)

    def forward(self, x):
        out, (h, c) = self.rnn(x)
        return self.head(out), h, c


class GRUModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(8, 12, batch_first=True)
        self.head = nn.Linear(12, 4)

    def forward(self, x):
        out, h = self.rnn(x)
        return self.head(out[:, -1]), h


class TransformerLayer(nn.Module):
    """One nn.TransformerEncoderLayer (batch_first) with an attention mask and a key padding
    mask."""

    def __init__(self):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, dropout=0.1,
                                                batch_first=True)

    def forward(self, x, mask, key_padding_mask):
        return self.layer(x, src_mask=mask, src_key_padding_mask=key_padding_mask)


def _transformer_inputs(g):
    x = torch.randn(2, 5, 16, generator=g)
    mask = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)  # causal: True = masked
    kpm = torch.zeros(2, 5, dtype=torch.bool)
    kpm[1, 3:] = True  # the second sequence has two padded positions
    return x, mask, kpm


class BufferInplace(nn.Module):
    """A registered buffer, a non-persistent buffer and in-place ops on intermediates."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.register_buffer("offset", torch.linspace(-1, 1, 6))
        self.register_buffer("scale", torch.full((6,), 0.5), persistent=False)

    def forward(self, x):
        y = self.fc(x)
        y.add_(self.offset)
        y.mul_(self.scale)
        y = y.relu_()
        z = y.clone()
        z[:, 0] = 1.0
        return z.sub_(x)


class RunningStats(nn.Module):
    """A model that mutates its own buffers in forward (running mean and a call counter): the
    lowered graph is stateful."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros(4))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def forward(self, x):
        self.mean.mul_(0.9).add_(0.1 * x.mean(0))
        self.count.add_(1)
        return x - self.mean, self.count * 2


# ---------------------------------------------------------------------------------------------
# transformers (tiny configs, random weights, no downloads)
# ---------------------------------------------------------------------------------------------


class _HFWrapper(nn.Module):
    """Calls a transformers model with plain tensors and returns plain tensors."""

    def __init__(self, model: nn.Module, outputs: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.outputs = outputs

    def forward(self, input_ids, attention_mask=None):
        kwargs = {"attention_mask": attention_mask} if attention_mask is not None else {}
        out = self.model(input_ids=input_ids, use_cache=False, return_dict=True, **kwargs)
        return tuple(getattr(out, k) for k in self.outputs)


class _HFImageWrapper(nn.Module):
    """Calls a transformers vision model with pixel values and returns plain tensors."""

    def __init__(self, model: nn.Module, outputs: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.outputs = outputs

    def forward(self, pixel_values):
        out = self.model(pixel_values=pixel_values, return_dict=True)
        return tuple(getattr(out, k) for k in self.outputs)


def _attn(attn: str | None) -> dict:
    """``attn_implementation`` for a config: None keeps transformers' default (sdpa)."""
    return {} if attn is None else {"attn_implementation": attn}


def _bert(attn: str | None = "eager") -> nn.Module:
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=37, **_attn(attn))
    return _HFWrapper(BertModel(cfg), ("last_hidden_state", "pooler_output"))


def _gpt2(attn: str | None = "eager") -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100, bos_token_id=0, eos_token_id=0,
                     **_attn(attn))
    return _HFWrapper(GPT2LMHeadModel(cfg), ("logits",))


def _llama(attn: str | None = None) -> nn.Module:
    """Llama-style decoder: rotary position embeddings, RMSNorm, SwiGLU, grouped-query attention."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      bos_token_id=0, eos_token_id=0, pad_token_id=0, **_attn(attn))
    return _HFWrapper(LlamaForCausalLM(cfg), ("logits",))


def _bart(attn: str | None = None) -> nn.Module:
    """Encoder-decoder (decoder inputs are the shifted input ids, as BartModel makes them)."""
    from transformers import BartConfig, BartModel

    cfg = BartConfig(vocab_size=100, d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                     decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64,
                     pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, **_attn(attn))
    return _HFWrapper(BartModel(cfg), ("last_hidden_state", "encoder_last_hidden_state"))


class _T5Wrapper(nn.Module):
    """Calls a T5 encoder-decoder with plain tensors; the decoder reads the input ids shifted
    right (``_shift_right``, as T5 makes them from labels)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask=None):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask,
                         decoder_input_ids=self.model._shift_right(input_ids), use_cache=False, return_dict=True)
        return out.last_hidden_state, out.encoder_last_hidden_state


def _t5(attn: str | None = None) -> nn.Module:
    """T5: RMS-style layer norm without bias, relative position buckets as the attention bias."""
    from transformers import T5Config, T5Model

    cfg = T5Config(vocab_size=100, d_model=32, d_kv=16, d_ff=37, num_layers=1, num_decoder_layers=1, num_heads=2,
                   relative_attention_num_buckets=8, relative_attention_max_distance=16, decoder_start_token_id=0,
                   pad_token_id=0, eos_token_id=1, **_attn(attn))
    return _T5Wrapper(T5Model(cfg))


def _vit(attn: str | None = None) -> nn.Module:
    from transformers import ViTConfig, ViTModel

    cfg = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=2, intermediate_size=37, **_attn(attn))
    return _HFImageWrapper(ViTModel(cfg), ("last_hidden_state", "pooler_output"))


def _token_inputs(g, with_mask: bool):
    ids = torch.randint(0, 100, (2, 7), generator=g)
    if not with_mask:
        return (ids,)
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    return ids, mask


ZOO: list[ZooEntry] = [
    ZooEntry("mlp", _seeded(MLP), _inputs(lambda g: (torch.randn(4, 16, generator=g),)),
             frozenset({"dense"})),
    ZooEntry("mlp_bn_prelu", _seeded(MLPBatchNormPReLU), _inputs(lambda g: (torch.randn(4, 16, generator=g),)),
             frozenset({"dense", "batchnorm"})),
    ZooEntry("cnn", _seeded(SmallCNN), _inputs(lambda g: (torch.randn(2, 3, 16, 16, generator=g),)),
             frozenset({"conv"})),
    ZooEntry("resnet18", _seeded(ResNet18), _inputs(lambda g: (torch.randn(1, 3, 64, 64, generator=g),)),
             frozenset({"conv", "batchnorm", "residual"})),
    ZooEntry("inception", _seeded(InceptionBlock),
             _inputs(lambda g: (torch.randn(2, 8, 12, 12, generator=g),)), frozenset({"conv", "concat"})),
    ZooEntry("depthwise", _seeded(DepthwiseSeparable),
             _inputs(lambda g: (torch.randn(2, 8, 16, 16, generator=g),)), frozenset({"conv", "batchnorm"})),
    ZooEntry("lstm", _seeded(LSTMModel), _inputs(lambda g: (torch.randn(3, 5, 8, generator=g),)),
             frozenset({"recurrent"})),
    ZooEntry("gru", _seeded(GRUModel), _inputs(lambda g: (torch.randn(3, 5, 8, generator=g),)),
             frozenset({"recurrent"})),
    ZooEntry("transformer_layer", _seeded(TransformerLayer), _inputs(_transformer_inputs),
             frozenset({"attention"})),
    ZooEntry("buffer_inplace", _seeded(BufferInplace), _inputs(lambda g: (torch.randn(3, 6, generator=g),)),
             frozenset({"buffer", "inplace"})),
    ZooEntry("running_stats", _seeded(RunningStats), _inputs(lambda g: (torch.randn(5, 4, generator=g),)),
             frozenset({"buffer", "inplace", "state"})),
    ZooEntry("bert", _seeded(_bert), _inputs(lambda g: _token_inputs(g, True)),
             frozenset({"attention", "transformers"})),
    ZooEntry("gpt2", _seeded(_gpt2), _inputs(lambda g: _token_inputs(g, False)),
             frozenset({"attention", "transformers"})),
    # transformers' defaults (attn_implementation="sdpa")
    ZooEntry("bert_sdpa", _seeded(lambda: _bert(None)), _inputs(lambda g: _token_inputs(g, True)),
             frozenset({"attention", "transformers", "sdpa"})),
    ZooEntry("gpt2_sdpa", _seeded(lambda: _gpt2(None)), _inputs(lambda g: _token_inputs(g, False)),
             frozenset({"attention", "transformers", "sdpa"})),
    ZooEntry("llama_sdpa", _seeded(_llama), _inputs(lambda g: _token_inputs(g, True)),
             frozenset({"attention", "transformers", "sdpa", "rotary"})),
    ZooEntry("llama_eager", _seeded(lambda: _llama("eager")), _inputs(lambda g: _token_inputs(g, True)),
             frozenset({"attention", "transformers", "rotary"})),
    ZooEntry("bart_sdpa", _seeded(_bart), _inputs(lambda g: _token_inputs(g, True)),
             frozenset({"attention", "transformers", "sdpa", "encoder_decoder"})),
    ZooEntry("vit_sdpa", _seeded(_vit), _inputs(lambda g: (torch.randn(2, 3, 32, 32, generator=g),)),
             frozenset({"attention", "transformers", "sdpa", "vision"})),
    ZooEntry("t5_sdpa", _seeded(_t5), _inputs(lambda g: _token_inputs(g, True)),
             frozenset({"attention", "transformers", "sdpa", "encoder_decoder"})),
]

# The transformers models above that ZOO has only with sdpa, with eager attention: taken
# through export and TorchScript (and with dynamic dims) by tests/test_zoo_mdf_roundtrip.py
# only, to keep every other zoo test's time down.
EAGER_VARIANTS: list[ZooEntry] = [
    ZooEntry("bart_eager", _seeded(lambda: _bart("eager")), _inputs(lambda g: _token_inputs(g, True)),
             frozenset({"attention", "transformers", "encoder_decoder"})),
    ZooEntry("vit_eager", _seeded(lambda: _vit("eager")),
             _inputs(lambda g: (torch.randn(2, 3, 32, 32, generator=g),)),
             frozenset({"attention", "transformers", "vision"})),
    ZooEntry("t5_eager", _seeded(lambda: _t5("eager")), _inputs(lambda g: _token_inputs(g, True)),
             frozenset({"attention", "transformers", "encoder_decoder"})),
]

# ---------------------------------------------------------------------------------------------
# torchvision classification models (weights=None: random weights, nothing downloads).  Kept
# apart from ZOO (which every frontend and backend test runs): tests/test_zoo_torchvision.py
# takes them through torch.export and TorchScript.  "slow": several seconds per conversion on
# a 2-core machine (over ~1M parameters deep nets, 100M+ parameters, or a fixed 224x224 input):
# marked slow (TORCHMDF_TORCHVISION_QUICK=1 skips them in tests/test_zoo_torchvision.py).
# ---------------------------------------------------------------------------------------------


def _tv(fn_name: str, **kwargs) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        import torchvision.models as tvm

        return getattr(tvm, fn_name)(weights=None, **kwargs)

    make.__name__ = fn_name
    return make


def _tv_vit_tiny() -> nn.Module:
    """torchvision's VisionTransformer class in a tiny configuration (vit_b_16 is "slow")."""
    from torchvision.models import VisionTransformer

    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
                             num_classes=10)


def _tv_maxvit_tiny() -> nn.Module:
    """torchvision's MaxVit class in a tiny configuration (maxvit_t is "slow")."""
    from torchvision.models import MaxVit

    return MaxVit(input_size=(32, 32), stem_channels=8, partition_size=2, block_channels=[8, 16],
                  block_layers=[1, 1], head_dim=4, stochastic_depth_prob=0.0, num_classes=10)


def _images(n: int, size: int) -> Callable[[], tuple]:
    return _inputs(lambda g: (torch.randn(n, 3, size, size, generator=g),))


_TV = frozenset({"torchvision", "conv"})
TORCHVISION: list[ZooEntry] = [
    ZooEntry("tv_resnet18", _seeded(_tv("resnet18", num_classes=10)), _images(2, 32), _TV),
    ZooEntry("tv_resnet50", _seeded(_tv("resnet50", num_classes=10)), _images(2, 32), _TV | {"slow"}),
    ZooEntry("tv_resnext50_32x4d", _seeded(_tv("resnext50_32x4d", num_classes=10)), _images(2, 32), _TV | {"slow"}),
    ZooEntry("tv_squeezenet1_0", _seeded(_tv("squeezenet1_0", num_classes=10)), _images(2, 64), _TV),
    ZooEntry("tv_shufflenet_v2_x0_5", _seeded(_tv("shufflenet_v2_x0_5", num_classes=10)), _images(2, 32), _TV),
    ZooEntry("tv_mobilenet_v2", _seeded(_tv("mobilenet_v2", num_classes=10)), _images(2, 32), _TV | {"slow"}),
    ZooEntry("tv_mobilenet_v3_small", _seeded(_tv("mobilenet_v3_small", num_classes=10)), _images(2, 32), _TV),
    ZooEntry("tv_mnasnet0_5", _seeded(_tv("mnasnet0_5", num_classes=10)), _images(2, 32), _TV | {"slow"}),
    ZooEntry("tv_densenet121", _seeded(_tv("densenet121", num_classes=10)), _images(2, 32), _TV | {"slow"}),
    ZooEntry("tv_googlenet", _seeded(_tv("googlenet", num_classes=10, aux_logits=False, init_weights=True)),
             _images(2, 32), _TV | {"slow"}),
    ZooEntry("tv_efficientnet_b0", _seeded(_tv("efficientnet_b0", num_classes=10)), _images(2, 32), _TV | {"slow"}),
    ZooEntry("tv_vit_tiny", _seeded(_tv_vit_tiny), _images(2, 32), _TV | {"attention"}),
    ZooEntry("tv_maxvit_tiny", _seeded(_tv_maxvit_tiny), _images(2, 32), _TV | {"attention"}),
    ZooEntry("tv_vgg11", _seeded(_tv("vgg11", num_classes=10)), _images(1, 32), _TV | {"slow"}),
    ZooEntry("tv_vgg11_bn", _seeded(_tv("vgg11_bn", num_classes=10)), _images(2, 32), _TV | {"slow"}),
    ZooEntry("tv_vit_b_16", _seeded(_tv("vit_b_16", num_classes=10)), _images(1, 224), _TV | {"slow", "attention"}),
    ZooEntry("tv_maxvit_t", _seeded(_tv("maxvit_t", num_classes=10)), _images(1, 224), _TV | {"slow", "attention"}),
    ZooEntry("tv_wide_resnet50_2", _seeded(_tv("wide_resnet50_2", num_classes=10)), _images(2, 32), _TV | {"slow"}),
]

BY_NAME: dict[str, ZooEntry] = {e.name: e for e in ZOO + EAGER_VARIANTS + TORCHVISION}


def get(name: str) -> ZooEntry:
    return BY_NAME[name]


__all__ = ["ZooEntry", "ZOO", "EAGER_VARIANTS", "TORCHVISION", "BY_NAME", "get"]
