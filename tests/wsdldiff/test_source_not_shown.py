"""``wsdl diff SOURCE`` with a URL that is not http(s) (``ftp://user:password@host/...``): refused
naming SOURCE, with its user and password masked. It was taken for a file's path and echoed whole
("no file ftp://u:Secr3tPw@h/x.wsdl")."""

from __future__ import annotations

import pytest

from uws_adapter.cli.main import main
from uws_adapter.errors import InputError
from uws_adapter.wsdldiff.sources import read_documents

SECRET = "Secr3tPw"


@pytest.mark.parametrize("source", [f"ftp://u:{SECRET}@h/x.wsdl", f"file://u:{SECRET}@h/x.wsdl"])
def test_a_url_of_another_scheme_is_refused_masked(source: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(InputError) as raised:
        read_documents(source)
    assert SECRET not in str(raised.value)
    assert str(raised.value).startswith("SOURCE: ")
    assert "is not an http(s) URL" in str(raised.value)
    assert main(["wsdl", "diff", source]) == 2
    err = capsys.readouterr().err
    assert SECRET not in err
    assert err.count("\n") == 1
