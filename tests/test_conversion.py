"""Config translation details that the tiny end-to-end checkpoint does not exercise."""

import pytest
from fixtures.tiny_audiocraft import tiny_compression_xp_cfg
from omegaconf import OmegaConf

from models.audiocraft_checkpoint import CODEC_KEYS, _resolved, codec_config
from models.errors import UserError


def codec_cfg(**changes) -> dict:
    cfg = OmegaConf.create(tiny_compression_xp_cfg())
    cfg.rvq.update(changes)
    return _resolved(cfg, CODEC_KEYS)


@pytest.mark.parametrize("bins", [64, 1024, 2048])
def test_codec_with_more_quantizers_than_the_lm(bins):
    config = codec_config(codec_cfg(n_q=8, bins=bins), lm_codebooks=4)
    assert config.num_quantizers == 8  # every quantizer's weights load
    # ...and prompts are encoded with the LM's four
    from transformers import EncodecModel

    assert EncodecModel(config).quantizer.get_num_quantizers_for_bandwidth(config.target_bandwidths[0]) == 4


def test_lm_with_more_codebooks_than_the_codec_is_refused():
    with pytest.raises(UserError, match="does not support"):
        codec_config(codec_cfg(n_q=2), lm_codebooks=4)
