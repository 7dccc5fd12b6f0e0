#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *answer(PyObject *self, PyObject *args) {
    (void)self;
    (void)args;
    return PyLong_FromLong(7);
}

static PyMethodDef methods[] = {
    {"answer", answer, METH_NOARGS, "An answer, computed in C."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "wbpriv_ext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_wbpriv_ext(void) { return PyModule_Create(&module); }
