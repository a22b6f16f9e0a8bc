"""Packaging beyond pyproject.toml: the wheel carries a copy of conf/ inside the package.

conf/ at the top of the repository stays the one source of the configs; a built wheel has
no repository beside it, so its ``displace`` command reads ``object_displacement/conf``
(see ``object_displacement.config.config_dir``).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithConfigs(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:  # an editable install reads the repository's conf/
            target = Path(self.build_lib) / "object_displacement" / "conf"
            shutil.rmtree(target, ignore_errors=True)  # a config removed from conf/ leaves the wheel too
            shutil.copytree(Path(__file__).parent / "conf", target)


setup(cmdclass={"build_py": BuildWithConfigs})
