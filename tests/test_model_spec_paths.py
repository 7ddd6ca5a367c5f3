"""SMPL-X model specs with the folders users really have, Windows ones included: ``smplx:PATH[:GENDER]`` where
PATH may hold a drive colon, backslashes, spaces or a UNC share. Only a last part naming a gender is split off."""

from __future__ import annotations

import pytest

from posecore.bodies import parse_smplx_spec
from posecore.errors import ParameterError


@pytest.mark.parametrize(
    ("spec", "path", "gender"),
    [
        (r"smplx:C:\Users\Ana\models", r"C:\Users\Ana\models", "neutral"),
        (r"smplx:C:\Users\Ana\models:female", r"C:\Users\Ana\models", "female"),
        (r"smplx:C:\Users\Ana\SMPL-X models\smplx:MALE", r"C:\Users\Ana\SMPL-X models\smplx", "male"),
        (r"smplx:D:/SMPL-X/models_smplx_v1_1/models:neutral", "D:/SMPL-X/models_smplx_v1_1/models", "neutral"),
        (r"smplx:\\nas\share\body models\SMPLX_FEMALE.npz", r"\\nas\share\body models\SMPLX_FEMALE.npz", "neutral"),
        (r"smplx:C:\female", r"C:\female", "neutral"),  # a folder called 'female' on drive C, not a gender
        ("smplx:/home/ana/models:female", "/home/ana/models", "female"),
        ("smplx:~/models", "~/models", "neutral"),
    ],
)
def test_windows_and_posix_folders_keep_their_colons(spec, path, gender):
    assert parse_smplx_spec(spec) == (path, gender)


def test_a_misspelt_gender_after_an_existing_folder_is_named(tmp_path):
    with pytest.raises(ParameterError, match="unknown SMPL-X gender 'femal'"):
        parse_smplx_spec(f"smplx:{tmp_path}:femal")


def test_no_folder_is_a_clear_error():
    with pytest.raises(ParameterError, match="needs the folder"):
        parse_smplx_spec("smplx:")
