import nox

import wheelbarrow.nox

nox.session(wheelbarrow.nox.build_wheels)
nox.session(wheelbarrow.nox.image)


@nox.session
def image_distroless(session: nox.Session) -> None:
    """The same wheelhouse in an image FROM scratch: no shell, no package manager (runtime-style)."""
    session.env["WHEELBARROW_RUNTIME_STYLE"] = "distroless"
    session.env["WHEELBARROW_IMAGE_TAG"] = "example-service:0.1.0-distroless"
    wheelbarrow.nox.image(session)
