"""Repository-wide pytest set-up.

`tools.pytest_curriculum` adds --impl, --todo, --expect-stubs and the TODO progress table; `pytester`
lets tests/tools run small inner pytest sessions to test that plugin.
"""

pytest_plugins = ["tools.pytest_curriculum", "pytester"]
