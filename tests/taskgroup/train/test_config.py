import pytest

from taskgroup.errors import TaskgroupError
from taskgroup.train.config import make_run_config


def write(tmp_path, text):
    path = tmp_path / "cfg.toml"
    path.write_text(text)
    return path


def test_toml_overrides_preset_fields(tmp_path):
    path = write(tmp_path, "[train]\nepochs = 3\nlr = 1\n[data]\nn_train = 100\n[arch]\nresolution = 32\n")
    cfg = make_run_config("tiny", path)
    assert cfg.train.epochs == 3 and cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.data.n_train == 100
    assert cfg.arch.resolution == 32 and cfg.data.resolution == 32  # data follows the network input


@pytest.mark.parametrize("text,needle", [
    ("[train]\nepochz = 3\n", "unknown key 'epochz'"),
    ("[train]\nepochs = 'three'\n", "key 'epochs': expected an integer, found str"),
    ("[train]\nlr = true\n", "key 'lr': expected a number, found bool"),
    ("[train]\nepochs = 0\n", "field 'epochs': expected >= 1"),
    ("[data]\nresolution = 64\n", "set the input resolution in [arch]"),
    ("[data]\nn_trian = 5\n", "unknown key(s) 'n_trian'"),
    ("[data]\nn_train = 'many'\n", "n_train"),
    ("[model]\nx = 1\n", "unknown section(s) 'model'"),
    ("train = 3\n", "'train' must be a table"),
    ("[arch]\nresolution = 20\n", "multiple of 16"),
    ("[train\n", "not valid TOML"),
])
def test_bad_config_names_file_and_key(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(TaskgroupError) as err:
        make_run_config("tiny", path)
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_unknown_preset_and_bad_esa():
    with pytest.raises(TaskgroupError, match="unknown preset 'huge'"):
        make_run_config("huge")
    with pytest.raises(TaskgroupError, match="--esa fraction must be in"):
        make_run_config("tiny", esa_fraction=1.5)


def test_config_dict_is_stable_and_includes_esa():
    cfg = make_run_config("tiny", esa_fraction=0.2)
    assert cfg.to_dict() == make_run_config("tiny", esa_fraction=0.2).to_dict()
    assert cfg.to_dict() != make_run_config("tiny", esa_fraction=0.3).to_dict()
