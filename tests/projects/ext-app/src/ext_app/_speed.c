#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *double_it(PyObject *self, PyObject *args) {
    long value;
    if (!PyArg_ParseTuple(args, "l", &value)) {
        return NULL;
    }
    return PyLong_FromLong(value * 2);
}

static PyMethodDef methods[] = {{"double", double_it, METH_VARARGS, "Twice the number."}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speed", NULL, -1, methods};

PyMODINIT_FUNC PyInit__speed(void) { return PyModule_Create(&module); }
