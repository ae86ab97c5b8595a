import pytest
import torch

from trainables import GpuMemoryError, get_spec, placement
from trainables.device import out_of_memory_in_one_line


def test_running_out_of_gpu_memory_is_one_line_naming_the_share():
    with pytest.raises(GpuMemoryError, match=r"^resnet50 at 224 px needs more than its share of the GPU \(3072 MiB\); "
                                             r"raise --gpus-per-trial"):
        with out_of_memory_in_one_line("resnet50 at 224 px", 3072.0):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    with pytest.raises(GpuMemoryError, match="needs more than the GPU's memory"):
        with out_of_memory_in_one_line("cnn at 28 px", None):
            raise torch.OutOfMemoryError("CUDA out of memory")
    with pytest.raises(ValueError), out_of_memory_in_one_line("cnn", None):  # other errors pass through
        raise ValueError("not memory")


def test_the_cpu_computes_in_fp32_with_the_default_layout_whatever_the_architectures_gpu_recipe():
    where = placement(get_spec("efficientnet_b0"), 224, torch.device("cpu"))
    assert where.amp_dtype is None and where.memory_format == torch.contiguous_format
