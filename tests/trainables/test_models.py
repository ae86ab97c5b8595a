import pytest
import torch

from trainables import InputError, create_model, get_spec, list_models, load_pretrained_state, weights_path


@pytest.mark.parametrize("name", list_models())
def test_each_model_outputs_two_logits(name):
    torch.manual_seed(0)
    model = create_model(name, in_channels=1, image_size=32).eval()
    channels = get_spec(name).in_channels(1)
    with torch.no_grad():
        out = model(torch.rand(2, channels, 32, 32))
    assert out.shape == (2, 2)


@pytest.mark.parametrize("name", list_models())
def test_gradcam_layer_is_a_module_of_the_model(name):
    model = create_model(name, in_channels=3, image_size=32)
    layer = get_spec(name).gradcam_layer(model)
    assert any(layer is m for m in model.modules())


def test_study_cnn_matches_the_deck_at_96_pixels():
    model = create_model("cnn", in_channels=3, image_size=96)
    assert model.classifier[1].in_features == 256 * 6 * 6
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    bn = create_model("cnn_bn", in_channels=3, image_size=96)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in bn.modules()) == 4


def test_cnn_rejects_sizes_not_divisible_by_16():
    with pytest.raises(InputError, match="divisible by 16"):
        create_model("cnn", image_size=40)


def test_unknown_architecture_suggests_close_names():
    with pytest.raises(InputError, match="unknown architecture 'resnet19'.*did you mean resnet18"):
        create_model("resnet19")


def test_missing_weights_name_the_expected_file(tmp_path):
    with pytest.raises(InputError, match=r"resnet18-f37072fd\.pth.*--weights-dir"):
        load_pretrained_state("resnet18", tmp_path)


def test_pretrained_backbone_is_loaded_and_head_replaced(tmp_path):
    """A tiny stand-in for ImageNet weights: a random ResNet18 with a 1000-way head."""
    from torchvision.models import resnet18

    torch.manual_seed(3)
    imagenet_like = resnet18(weights=None, num_classes=1000).state_dict()
    torch.save(imagenet_like, weights_path("resnet18", tmp_path))
    state = load_pretrained_state("resnet18", tmp_path)
    model = create_model("resnet18", imagenet_state=state)
    assert torch.equal(model.conv1.weight, imagenet_like["conv1.weight"])
    assert torch.equal(model.layer4[1].bn2.running_var, imagenet_like["layer4.1.bn2.running_var"])
    assert model.fc.out_features == 2


def test_weights_for_another_architecture_are_refused(tmp_path):
    from torchvision.models import resnet18

    torch.save(resnet18(weights=None).state_dict(), weights_path("resnet50", tmp_path))
    with pytest.raises(InputError, match="do not fit 'resnet50'"):
        create_model("resnet50", imagenet_state=load_pretrained_state("resnet50", tmp_path))


def test_input_size_check_names_the_model():
    from trainables import check_input_size

    check_input_size("resnet18", 32)
    with pytest.raises(InputError, match="divisible by 16"):
        check_input_size("cnn", 24)
