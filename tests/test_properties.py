from pathlib import Path

import pytest

from kbroker.properties import read_properties


def test_java_properties_syntax(tmp_path: Path) -> None:
    path = tmp_path / "x.properties"
    path.write_text("# comment\n! comment\n\na=1\nb : 2\nc 3\n  d=x=y  \ne=\\\n   continued\nhalf-writ")
    assert read_properties(path) == {"a": "1", "b": "2", "c": "3", "d": "x=y", "e": "continued", "half-writ": ""}


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_properties(tmp_path / "absent.properties")
