/* A tiny static program that tries, from inside a container, what a
 * default container must not be able to do, one line per attempt:
 *   <name> denied <errno>   or   <name> ALLOWED
 * Every attempt is chosen to be harmless if it were allowed: it fails on
 * purpose right after the permission check (invalid flags, NULL times, a
 * cmd a pid namespace refuses), or only opens for writing without writing.
 * `escape_probe setuid` prints the effective uid instead (for the
 * no_new_privs check, run as a setuid-root copy).
 *
 * Never run it on a host: as root there, the mount and reboot(CAD_OFF)
 * attempts succeed. It refuses unless it is told it is inside a container
 * and sees itself as one of the first pids of a pid namespace. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/keyctl.h>
#include <linux/reboot.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/swap.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <unistd.h>

static void report(const char *name, long rc) {
    if (rc < 0)
        printf("%s denied %s\n", name, strerrorname_np(errno));
    else
        printf("%s ALLOWED\n", name);
}

static long open_for_write(const char *path) {
    int fd = open(path, O_WRONLY);
    if (fd >= 0)
        close(fd);
    return fd;
}

/* mknod is allowed (CAP_MKNOD is a default); using the node must not be. */
static long mknod_and_open(const char *path, mode_t type, dev_t dev) {
    if (mknod(path, type | 0600, dev) < 0 && errno != EEXIST)
        return -1;
    int fd = open(path, O_RDONLY);
    if (fd >= 0)
        close(fd);
    return fd;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "setuid") == 0) {
        printf("euid %d\n", geteuid());
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "--inside-container") != 0 || getpid() > 64) {
        fprintf(stderr, "escape_probe: only inside a container (--inside-container [HOST_PID])\n");
        return 2;
    }
    pid_t host_pid = argc > 2 ? atoi(argv[2]) : 0;
    setvbuf(stdout, NULL, _IOLBF, 0);

    mkdir("/tmp/probe-mnt", 0700);
    report("mount", mount("none", "/tmp/probe-mnt", "tmpfs", 0, NULL));
    report("umount", umount2("/proc/sys", MNT_DETACH));
    report("finit_module", syscall(SYS_finit_module, -1, "", 0));
    report("init_module", syscall(SYS_init_module, NULL, 0, ""));
    report("iopl", iopl(3));
    report("ioperm", ioperm(0x80, 1, 1));
    /* In a pid namespace, CAD_OFF is refused after the capability check. */
    report("reboot", syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_CAD_OFF, NULL));
    /* An unknown flag: EINVAL if the permission check passed. */
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0x100UL));
    /* Both NULL: checked for CAP_SYS_TIME, then changes nothing. */
    report("settimeofday", syscall(SYS_settimeofday, NULL, NULL));
    report("swapoff", swapoff("/nonexistent"));
    report("sysctl_write", open_for_write("/proc/sys/kernel/domainname"));
    report("proc_sys_vm_write", open_for_write("/proc/sys/vm/drop_caches"));
    report("proc_irq_write", open_for_write("/proc/irq/default_smp_affinity"));
    report("sys_write", open_for_write("/sys/kernel/profiling"));
    report("sys_class_write", open_for_write("/sys/class/net/lo/mtu"));
    report("mknod_disk", mknod_and_open("/tmp/probe-disk", S_IFBLK, makedev(7, 0)));
    report("mknod_mem", mknod_and_open("/tmp/probe-mem", S_IFCHR, makedev(1, 1)));
    report("mknod_kmsg", mknod_and_open("/tmp/probe-kmsg", S_IFCHR, makedev(1, 11)));
    report("keyctl", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0));
    report("add_key", syscall(SYS_add_key, "user", "probe", "x", 1, KEY_SPEC_PROCESS_KEYRING));
    report("unshare_user", unshare(CLONE_NEWUSER));
    report("unshare_mount", unshare(CLONE_NEWNS));
    report("unshare_net", unshare(CLONE_NEWNET));
    report("setns", setns(open("/proc/1/ns/net", O_RDONLY), 0));
    report("bpf", syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, NULL, 0));
    report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    report("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, NULL, 0));
    report("userfaultfd", syscall(SYS_userfaultfd, 0));
    if (host_pid > 0) {
        report("kill_host", kill(host_pid, 0));
        report("ptrace_host", ptrace(PTRACE_ATTACH, host_pid, NULL, NULL));
    }
    return 0;
}
