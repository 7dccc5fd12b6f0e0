#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>

/* libzstd is loaded by name when the module is imported, as client libraries load their plugins:
   nothing in the ELF file says it is needed, so only importing the module shows it missing. */
static unsigned (*zstd_version)(void);

static PyObject *version(PyObject *self, PyObject *args) { return PyLong_FromUnsignedLong(zstd_version()); }

static PyMethodDef methods[] = {{"version", version, METH_NOARGS, "libzstd's version number."}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_zstd", NULL, -1, methods};

PyMODINIT_FUNC PyInit__zstd(void) {
    void *handle = dlopen("libzstd.so.1", RTLD_NOW);
    if (handle == NULL) {
        PyErr_SetString(PyExc_ImportError, dlerror());
        return NULL;
    }
    zstd_version = (unsigned (*)(void))dlsym(handle, "ZSTD_versionNumber");
    if (zstd_version == NULL) {
        PyErr_SetString(PyExc_ImportError, dlerror());
        return NULL;
    }
    return PyModule_Create(&module);
}
