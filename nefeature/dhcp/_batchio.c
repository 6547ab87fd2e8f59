/* Optional C helper for the DHCP UDP socket (nefeature.dhcp.transport).
 *
 * receive_batch: recvmmsg(2) drains up to 64 datagrams in one system call, with each
 * one's IP_PKTINFO (the interface it came in on and the address it was sent to), and
 * hands them over as [(data, ifindex, destination)] -- what socket.recvmsg gives one
 * call and one ancillary list at a time.  Non-blocking (MSG_DONTWAIT): an empty queue is
 * an empty list, not an exception.
 *
 * send_batch: sendmmsg(2) sends a turn's replies, up to 64 a system call, each from the
 * reply's own source address (IP_PKTINFO's ipi_spec_dst, the server identifier) --
 * what socket.sendmsg does one reply at a time, after parsing an address string and an
 * ancillary list for each.  Both take the replies as they are (data, address, port,
 * source, ...): integers, so no string is made or parsed.
 *
 * timer_open / timer_arm: a timerfd(2) for the socket's read hold under load
 * (nefeature.dhcp.transport.ReadPacer): the event loops' own timers count in whole
 * milliseconds (uvloop rounds a 0.5 ms delay to none), a timerfd in nanoseconds.  Arming
 * first reads the descriptor, so an expiry that was not collected does not stay readable.
 *
 * Called only from the event loop's thread, so the GIL is kept and the buffers can be
 * static.  Built by `python -m nefeature.tools.build_helpers` (make test, make demo) or
 * by pip as an optional extension; without it the transport uses socket.recvmsg and
 * socket.sendmsg. */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

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

#define CLIENT_PORT 68

/* One reply's header: to address:port, from source unless it goes to a client's port or
 * to the broadcast address (there the kernel picks the source by the route, as sendto
 * does).  Returns 0, or -1 with a Python exception set for a reply of the wrong shape. */
static int prepare(PyObject *reply, struct mmsghdr *message, struct iovec *vector,
                   struct sockaddr_in *destination, char *control) {
    if (!PyTuple_Check(reply) || PyTuple_GET_SIZE(reply) < 4) {
        PyErr_SetString(PyExc_TypeError, "a reply is a tuple (data, address, port, source, ...)");
        return -1;
    }
    PyObject *data = PyTuple_GET_ITEM(reply, 0);
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "a reply's data is bytes");
        return -1;
    }
    unsigned long address = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(reply, 1));
    unsigned long port = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(reply, 2));
    unsigned long source = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(reply, 3));
    if (PyErr_Occurred())
        return -1;
    memset(destination, 0, sizeof(*destination));
    destination->sin_family = AF_INET;
    destination->sin_port = htons((uint16_t)port);
    destination->sin_addr.s_addr = htonl((uint32_t)address);
    vector->iov_base = PyBytes_AS_STRING(data);
    vector->iov_len = (size_t)PyBytes_GET_SIZE(data);
    memset(message, 0, sizeof(*message));
    message->msg_hdr.msg_name = destination;
    message->msg_hdr.msg_namelen = sizeof(*destination);
    message->msg_hdr.msg_iov = vector;
    message->msg_hdr.msg_iovlen = 1;
    if (address != INADDR_BROADCAST && port != CLIENT_PORT) {
        memset(control, 0, CONTROL_SIZE);
        message->msg_hdr.msg_control = control;
        message->msg_hdr.msg_controllen = CONTROL_SIZE;
        struct cmsghdr *c = CMSG_FIRSTHDR(&message->msg_hdr);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
        struct in_pktinfo info = {.ipi_ifindex = 0};
        info.ipi_spec_dst.s_addr = htonl((uint32_t)source);
        memcpy(CMSG_DATA(c), &info, sizeof(info));
    }
    return 0;
}

static PyObject *send_batch(PyObject *self, PyObject *args) {
    int fd;
    PyObject *replies;
    if (!PyArg_ParseTuple(args, "iO!", &fd, &PyList_Type, &replies))
        return NULL;
    struct mmsghdr messages[MAX_DATAGRAMS];
    struct iovec vectors[MAX_DATAGRAMS];
    struct sockaddr_in destinations[MAX_DATAGRAMS];
    PyObject *failed = PyList_New(0);
    if (failed == NULL)
        return NULL;
    Py_ssize_t total = PyList_GET_SIZE(replies);
    for (Py_ssize_t first = 0; first < total; first += MAX_DATAGRAMS) {
        int count = (int)(total - first < MAX_DATAGRAMS ? total - first : MAX_DATAGRAMS);
        for (int i = 0; i < count; i++)
            if (prepare(PyList_GET_ITEM(replies, first + i), &messages[i], &vectors[i],
                        &destinations[i], controls[i]) < 0) {
                Py_DECREF(failed);
                return NULL;
            }
        int done = 0;
        while (done < count) {
            int sent = sendmmsg(fd, messages + done, (unsigned int)(count - done), MSG_DONTWAIT);
            if (sent > 0) {
                done += sent;
                continue;
            }
            if (sent < 0 && errno == EINTR)
                continue;
            /* messages[done] failed.  From a source address we do not hold (a virtual IP
             * just gone), it goes again without one, as socket.sendto would send it. */
            int error = errno;
            struct msghdr *header = &messages[done].msg_hdr;
            if (header->msg_control != NULL) {
                header->msg_control = NULL;
                header->msg_controllen = 0;
                if (sendmsg(fd, header, MSG_DONTWAIT) >= 0) {
                    done++;
                    continue;
                }
                error = errno;
            }
            PyObject *failure = Py_BuildValue("(ni)", first + done, error);
            if (failure == NULL || PyList_Append(failed, failure) < 0) {
                Py_XDECREF(failure);
                Py_DECREF(failed);
                return NULL;
            }
            Py_DECREF(failure);
            done++;
        }
    }
    return failed;
}

static PyObject *timer_open(PyObject *self, PyObject *unused) {
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(fd);
}

static PyObject *timer_arm(PyObject *self, PyObject *args) {
    int fd;
    double seconds;
    if (!PyArg_ParseTuple(args, "id", &fd, &seconds))
        return NULL;
    uint64_t expirations;
    if (read(fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
        return PyErr_SetFromErrno(PyExc_OSError);
    struct itimerspec spec = {{0, 0}, {0, 0}};
    if (seconds > 0) {
        spec.it_value.tv_sec = (time_t)seconds;
        spec.it_value.tv_nsec = (long)((seconds - (double)spec.it_value.tv_sec) * 1e9);
        if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0)
            spec.it_value.tv_nsec = 1;
    }
    if (timerfd_settime(fd, 0, &spec, NULL) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"timer_open", timer_open, METH_NOARGS, "timer_open() -> a non-blocking timerfd"},
    {"timer_arm", timer_arm, METH_VARARGS,
     "timer_arm(fd, seconds): clear the timer, then arm it (0: disarm)"},
    {"receive_batch", receive_batch, METH_VARARGS,
     "receive_batch(fd, count) -> [(data, ifindex, destination)], at most count (<= 64)"},
    {"send_batch", send_batch, METH_VARARGS,
     "send_batch(fd, [(data, address, port, source, ...)]) -> [(index, errno)] of the "
     "replies not sent"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_batchio", NULL, -1, methods};

PyMODINIT_FUNC PyInit__batchio(void) { return PyModule_Create(&module); }
