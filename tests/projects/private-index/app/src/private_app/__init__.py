"""Fixture: the project that depends on a pure wheel and a compiled sdist from the private index."""

import wbpriv_ext
import wbpriv_pure

ANSWER = (wbpriv_pure.WORD, wbpriv_ext.answer())
