import nox

import wheelbarrow.nox

nox.session(wheelbarrow.nox.build_wheels)
nox.session(wheelbarrow.nox.image)
