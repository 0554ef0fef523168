//! `linux.seccomp` from config.json compiled into a classic BPF program.
