"""Fixture: the project that depends on wheelbarrow-hostile."""

import hostile

ANSWER = hostile.answer()
