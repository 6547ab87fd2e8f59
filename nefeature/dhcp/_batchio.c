/* Optional C helper for the DHCP UDP socket (nefeature.dhcp.transport): recvmmsg(2)
 * drains up to 64 datagrams in one system call, with each one's IP_PKTINFO (the
 * interface it came in on and the address it was sent to), and hands them over as
 * [(data, ifindex, destination)] -- what socket.recvmsg gives one call and one
 * ancillary list at a time.  Non-blocking (MSG_DONTWAIT): an empty queue is an empty
 * list, not an exception.  Called only from the event loop's thread, so the GIL is kept
 * and the buffers can be static.  Built by `python -m nefeature.tools.build_batchio`
 * (make test, make demo); without it the transport reads with socket.recvmsg. */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_DATAGRAMS 64
#define DATAGRAM_SIZE 4096
#define CONTROL_SIZE CMSG_SPACE(sizeof(struct in_pktinfo))

static char buffers[MAX_DATAGRAMS][DATAGRAM_SIZE];
static char controls[MAX_DATAGRAMS][CONTROL_SIZE];

static PyObject *receive_batch(PyObject *self, PyObject *args) {
    int fd, count;
    if (!PyArg_ParseTuple(args, "ii", &fd, &count))
        return NULL;
    if (count < 1 || count > MAX_DATAGRAMS)
        count = MAX_DATAGRAMS;
    struct mmsghdr messages[MAX_DATAGRAMS];
    struct iovec vectors[MAX_DATAGRAMS];
    memset(messages, 0, sizeof(struct mmsghdr) * count);
    for (int i = 0; i < count; i++) {
        vectors[i].iov_base = buffers[i];
        vectors[i].iov_len = DATAGRAM_SIZE;
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_control = controls[i];
        messages[i].msg_hdr.msg_controllen = CONTROL_SIZE;
    }
    int received = recvmmsg(fd, messages, count, MSG_DONTWAIT, NULL);
    if (received < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return PyList_New(0);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    PyObject *result = PyList_New(received);
    if (result == NULL)
        return NULL;
    for (int i = 0; i < received; i++) {
        unsigned int ifindex = 0;
        struct in_addr destination = {.s_addr = INADDR_BROADCAST};
        struct msghdr *header = &messages[i].msg_hdr;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(header); c; c = CMSG_NXTHDR(header, c)) {
            if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
                struct in_pktinfo info;
                memcpy(&info, CMSG_DATA(c), sizeof(info));
                ifindex = info.ipi_ifindex;
                destination = info.ipi_addr;
            }
        }
        PyObject *item = Py_BuildValue("(y#Iy#)", buffers[i], (Py_ssize_t)messages[i].msg_len,
                                       ifindex, (const char *)&destination,
                                       (Py_ssize_t)sizeof(destination));
        if (item == NULL) {
            Py_DECREF(result);
            return NULL;
        }
        PyList_SET_ITEM(result, i, item);
    }
    return result;
}

static PyMethodDef methods[] = {
    {"receive_batch", receive_batch, METH_VARARGS,
     "receive_batch(fd, count) -> [(data, ifindex, destination)], at most count (<= 64)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_batchio", NULL, -1, methods};

PyMODINIT_FUNC PyInit__batchio(void) { return PyModule_Create(&module); }
