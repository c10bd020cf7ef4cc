"""System programs some tests drive, which pip cannot install.

    from tests.system_tools import system_tool

    promtool = system_tool("promtool", package="prometheus")

`system_tool` returns the program's path, or skips the test with one line naming the
Debian package that provides it. `.ci/run` installs those packages and sets
`HANDOFF_TESTS_REQUIRE_SYSTEM_TOOLS=1`, which turns the skip into a failure, so CI runs
every test.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE = "HANDOFF_TESTS_REQUIRE_SYSTEM_TOOLS"


def system_tool(name: str, package: str) -> str:
    """The path of program `name`, or skip naming the Debian `package` that brings it."""
    path = shutil.which(name)
    if path is not None:
        return path
    reason = f"needs {name}: apt-get install {package} (.ci/run installs it)"
    if os.environ.get(REQUIRE) == "1":
        pytest.fail(f"{reason}; {REQUIRE}=1 makes this a failure")
    pytest.skip(reason)
