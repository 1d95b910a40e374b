import pytest

from workbench.resources import resource_dir


@pytest.mark.parametrize("name", ["kernels_cu", "widgets"])
def test_resource_dirs_are_found_in_a_checkout(name):
    folder = resource_dir(name)
    assert folder.is_dir() and folder.name in (name, "_" + name)


def test_unknown_resource_name_is_refused():
    with pytest.raises(ValueError, match="kernels_cu"):
        resource_dir("shaders")
