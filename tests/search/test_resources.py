"""GPU shares for --gpus-per-trial auto, from the model registry's measured memory."""

import pytest

from search.resources import describe_shares, gpu_share, trial_gpu_mib, trial_resources
from trainables.device import CUDA_CONTEXT_MIB

H200_MIB = 139 * 1024
CARD_24_GIB = 24 * 1024


def test_shares_pack_trials_without_exceeding_the_card():
    for architecture, size in (("cnn", 96), ("cnn_bn", 96), ("resnet18", 224), ("resnet50", 224),
                               ("efficientnet_b0", 224)):
        for batch in (32, 64):
            need = trial_gpu_mib({"architecture": architecture, "batch_size": batch, "image_size": size},
                                 source_image_size=None)
            for card in (H200_MIB, CARD_24_GIB):
                share = gpu_share(need, card)
                assert round(1 / share) * need <= card  # k trials of 1/k each fit
                assert (round(1 / share) + 1) * need > card  # and one more would not


def test_bigger_models_batches_and_images_need_more():
    def need(**config):
        return trial_gpu_mib({"image_size": 224, "batch_size": 64, **config}, source_image_size=None)

    assert need(architecture="resnet50") > need(architecture="resnet18") > need(architecture="cnn", image_size=96)
    assert need(architecture="resnet50", batch_size=64) > need(architecture="resnet50", batch_size=32)
    assert need(architecture="resnet18", image_size=224) > need(architecture="resnet18", image_size=128)
    assert need(architecture="cnn", image_size=96) > CUDA_CONTEXT_MIB
    # Five fold models resident at once: more than one, less than five trials (activations are not multiplied).
    one, five = need(architecture="resnet50"), need(architecture="resnet50", folds=5)
    assert one < five < 5 * one


def test_a_trial_bigger_than_the_card_gets_a_whole_gpu():
    assert gpu_share(200_000, H200_MIB) == 1.0


def test_auto_resources_are_computed_per_config_and_fixed_ones_are_not():
    assert trial_resources(cpus=2, gpus=0.5, gpu_mib=None, source_image_size=None) == {"cpu": 2, "gpu": 0.5}
    per_config = trial_resources(cpus=1, gpus="auto", gpu_mib=CARD_24_GIB, source_image_size=None)
    small, big = per_config({"architecture": "cnn"}), per_config({"architecture": "resnet50"})
    assert small.bundles[0]["GPU"] < big.bundles[0]["GPU"] <= 1 and small.bundles[0]["CPU"] == 1
    with pytest.raises(ValueError, match="needs gpu_mib"):
        trial_resources(cpus=1, gpus="auto", gpu_mib=None, source_image_size=None)


def test_the_shares_are_printed_per_architecture_and_batch():
    line = describe_shares({"architecture": ("cnn", "resnet50"), "batch_size": (32, 64)}, {}, gpu_mib=CARD_24_GIB,
                           source_image_size=None)
    assert line.startswith("GPU shares (auto, 24 GiB per GPU): cnn batch 32: 1/") and line.count("batch") == 4
