//! The socket: one request in flight, replies matched by sequence number,
//! acks and errors decoded into errno plus the kernel's extended-ack text.

use std::io;
use std::os::fd::AsRawFd;

use netlink_packet_core::{
    NetlinkSerializable, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NLM_F_ACK,
    NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

const HEADER_LEN: usize = 16;

/// Kernel dump chunks are at most 32 KiB (netlink_recvmsg caps
/// max_recvmsg_len there); twice that leaves room for single replies
/// describing unusually large devices.
const RECV_CAPACITY: usize = 64 * 1024;

/// The kernel answers inside send() (or, for dumps, inside recv()), so a
/// reply that has not come after this long is never coming; better an error
/// than a container start that hangs forever.
const RECV_TIMEOUT_SECS: libc::time_t = 10;

/// A consistent dump is retried this many times when the kernel flags it
/// as interrupted by a concurrent change.
const DUMP_ATTEMPTS: usize = 5;

const NLMSGERR_ATTR_MSG: u16 = 1;
const NLA_TYPE_MASK: u16 = !(0x8000 | 0x4000);

/// Why a request failed, before the caller says what it was doing.
#[derive(Debug)]
pub(crate) enum Failure {
    Kernel { errno: i32, message: Option<String> },
    Io(io::Error),
    Malformed(String),
}

impl Failure {
    pub(crate) fn errno(&self) -> Option<i32> {
        match self {
            Failure::Kernel { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// One message of a reply, borrowed from the receive buffer.
pub(crate) struct Msg<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

pub(crate) struct NlSocket {
    sock: Socket,
    seq: u32,
    send_buf: Vec<u8>,
    recv_buf: Vec<u8>,
}

impl NlSocket {
    pub(crate) fn open() -> io::Result<Self> {
        Self::configure(Self::raw_socket()?)
    }

    /// Just the socket() call: the only step that must run inside the
    /// target namespace for `Netlink::open_in`.
    pub(crate) fn raw_socket() -> io::Result<Socket> {
        Socket::new(NETLINK_ROUTE)
    }

    pub(crate) fn configure(mut sock: Socket) -> io::Result<Self> {
        // All three are optional comforts (error texts, short acks, dump
        // filtering by the kernel); older kernels lacking one still work.
        let _ = sock.set_ext_ack(true);
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_netlink_get_strict_chk(true);
        let tv = libc::timeval {
            tv_sec: RECV_TIMEOUT_SECS,
            tv_usec: 0,
        };
        // SAFETY: a valid fd and a timeval of the size we pass.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        sock.bind(&SocketAddr::new(0, 0))?;
        Ok(NlSocket {
            sock,
            seq: 0,
            send_buf: Vec::with_capacity(512),
            recv_buf: Vec::with_capacity(RECV_CAPACITY),
        })
    }

    pub(crate) fn fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }

    /// Sends `msg` with NLM_F_ACK added to `flags` and reads until the ack.
    /// Every other message carrying our sequence number (the reply of a
    /// GET, the echo of an NLM_F_ECHO request) goes to `on_reply`.
    pub(crate) fn request(
        &mut self,
        msg: &RouteNetlinkMessage,
        flags: u16,
        mut on_reply: impl FnMut(&Msg) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let seq = self.send(msg, flags | NLM_F_REQUEST | NLM_F_ACK)?;
        loop {
            self.recv()?;
            let mut rest = self.recv_buf.as_slice();
            while let Some(m) = next_message(&mut rest)? {
                // Leftovers of an earlier request abandoned on an error.
                if m.seq != seq {
                    continue;
                }
                match m.ty {
                    NLMSG_ERROR => return decode_ack(&m),
                    NLMSG_DONE => return Ok(()),
                    NLMSG_NOOP => {}
                    NLMSG_OVERRUN => return Err(Failure::Malformed("NLMSG_OVERRUN".into())),
                    _ => on_reply(&m)?,
                }
            }
        }
    }

    /// Dumps: `on_part` sees every message of a consistent dump as
    /// `Some(msg)`. When the kernel marks the dump as interrupted by a
    /// concurrent change, `on_part(None)` says to forget what was seen and
    /// the dump is run again.
    pub(crate) fn dump(
        &mut self,
        msg: &RouteNetlinkMessage,
        mut on_part: impl FnMut(Option<&Msg>) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        for attempt in 1..=DUMP_ATTEMPTS {
            let seq = self.send(msg, NLM_F_REQUEST | NLM_F_DUMP)?;
            let mut interrupted = false;
            // The kernel keeps a dump running until it is read to the end,
            // and refuses the next dump on this socket (EBUSY) until then:
            // a callback error is kept and returned after the drain.
            let mut first_error = None;
            'dump: loop {
                self.recv()?;
                let mut rest = self.recv_buf.as_slice();
                while let Some(m) = next_message(&mut rest)? {
                    if m.seq != seq {
                        continue;
                    }
                    if m.flags & NLM_F_DUMP_INTR != 0 {
                        interrupted = true;
                    }
                    match m.ty {
                        NLMSG_DONE => {
                            decode_done(&m)?;
                            break 'dump;
                        }
                        NLMSG_ERROR => {
                            // A request refused before the dump started.
                            decode_ack(&m)?;
                            break 'dump;
                        }
                        NLMSG_NOOP => {}
                        NLMSG_OVERRUN => return Err(Failure::Malformed("NLMSG_OVERRUN".into())),
                        _ if first_error.is_some() || interrupted => {}
                        _ => {
                            if let Err(e) = on_part(Some(&m)) {
                                first_error = Some(e);
                            }
                        }
                    }
                }
            }
            if let Some(e) = first_error {
                return Err(e);
            }
            if !interrupted {
                return Ok(());
            }
            if attempt < DUMP_ATTEMPTS {
                on_part(None)?;
            }
        }
        Err(Failure::Malformed(format!(
            "dump interrupted by concurrent changes {DUMP_ATTEMPTS} times"
        )))
    }

    fn send(&mut self, msg: &RouteNetlinkMessage, flags: u16) -> Result<u32, Failure> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let len = HEADER_LEN + msg.buffer_len();
        let Ok(len32) = u32::try_from(len) else {
            return Err(Failure::Malformed(format!("request of {len} bytes")));
        };
        self.send_buf.clear();
        self.send_buf.resize(len, 0);
        self.send_buf[0..4].copy_from_slice(&len32.to_ne_bytes());
        self.send_buf[4..6].copy_from_slice(&msg.message_type().to_ne_bytes());
        self.send_buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        self.send_buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        // Port 0 in requests: the kernel answers to the sending socket anyway.
        msg.serialize(&mut self.send_buf[HEADER_LEN..]);
        loop {
            match self.sock.send(&self.send_buf, 0) {
                Ok(n) if n == len => return Ok(seq),
                Ok(n) => return Err(Failure::Malformed(format!("sent {n} of {len} bytes"))),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::Io(e)),
            }
        }
    }

    /// Reads one datagram from the kernel into `recv_buf`.
    fn recv(&mut self) -> Result<(), Failure> {
        loop {
            self.recv_buf.clear();
            let capacity = self.recv_buf.capacity();
            // MSG_TRUNC makes the return value the datagram's real length,
            // so truncation is detected instead of parsed as garbage.
            match self.sock.recv_from(&mut self.recv_buf, libc::MSG_TRUNC) {
                Ok((n, from)) => {
                    // Only the kernel (port 0) answers requests; anything
                    // else is not ours to parse.
                    if from.port_number() != 0 {
                        continue;
                    }
                    if n > self.recv_buf.len() {
                        // Grow for the next time; this reply is lost.
                        self.recv_buf.reserve(n);
                        return Err(Failure::Malformed(format!(
                            "reply of {n} bytes truncated to {capacity}"
                        )));
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(Failure::Io(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no reply from the kernel within {RECV_TIMEOUT_SECS} s"),
                    )))
                }
                Err(e) => return Err(Failure::Io(e)),
            }
        }
    }
}

/// Splits the next netlink message off `buf`.
fn next_message<'a>(buf: &mut &'a [u8]) -> Result<Option<Msg<'a>>, Failure> {
    if buf.is_empty() {
        return Ok(None);
    }
    let b: &'a [u8] = buf;
    let (Some(len), Some(ty), Some(flags), Some(seq)) = (
        read_u32(b, 0),
        read_u16(b, 4),
        read_u16(b, 6),
        read_u32(b, 8),
    ) else {
        return Err(Failure::Malformed(format!("{} trailing bytes", b.len())));
    };
    let len = len as usize;
    if len < HEADER_LEN || len > b.len() {
        return Err(Failure::Malformed(format!(
            "message length {len} in a buffer of {}",
            b.len()
        )));
    }
    let payload = &b[HEADER_LEN..len];
    *buf = b.get(align4(len)..).unwrap_or(&[]);
    Ok(Some(Msg {
        ty,
        flags,
        seq,
        payload,
    }))
}

/// NLMSG_ERROR: error 0 is the ack; otherwise a negative errno, the
/// request's header (and payload unless NLM_F_CAPPED), then ext-ack TLVs.
fn decode_ack(m: &Msg) -> Result<(), Failure> {
    let Some(code) = read_i32(m.payload, 0) else {
        return Err(Failure::Malformed(
            "NLMSG_ERROR without an error code".into(),
        ));
    };
    if code == 0 {
        return Ok(());
    }
    let tlv_offset = if m.flags & NLM_F_CAPPED != 0 {
        Some(4 + HEADER_LEN)
    } else {
        read_u32(m.payload, 4)
            .and_then(|orig| (orig as usize).checked_sub(HEADER_LEN))
            .map(|orig_payload| 4 + HEADER_LEN + align4(orig_payload))
    };
    Err(Failure::Kernel {
        errno: code.checked_neg().unwrap_or(code),
        message: tlv_offset.and_then(|off| ext_ack_message(m, off)),
    })
}

/// NLMSG_DONE ends a dump; a negative value in it means the dump failed.
fn decode_done(m: &Msg) -> Result<(), Failure> {
    match read_i32(m.payload, 0) {
        Some(code) if code < 0 => Err(Failure::Kernel {
            errno: code.checked_neg().unwrap_or(code),
            message: ext_ack_message(m, 4),
        }),
        _ => Ok(()),
    }
}

fn ext_ack_message(m: &Msg, offset: usize) -> Option<String> {
    if m.flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    attrs(m.payload.get(offset..)?)
        .find(|(kind, _)| *kind == NLMSGERR_ATTR_MSG)
        .map(|(_, value)| c_string(value))
}

/// Netlink attributes (rtattr/nlattr) as (type, value). Stops at the first
/// malformed one: what the kernel sent before it is still usable.
pub(crate) struct Attrs<'a>(&'a [u8]);

pub(crate) fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs(buf)
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let buf = self.0;
        let (Some(len), Some(kind)) = (read_u16(buf, 0), read_u16(buf, 2)) else {
            self.0 = &[];
            return None;
        };
        let len = len as usize;
        let Some(value) = buf.get(4..len) else {
            self.0 = &[];
            return None;
        };
        self.0 = buf.get(align4(len)..).unwrap_or(&[]);
        Some((kind & NLA_TYPE_MASK, value))
    }
}

pub(crate) fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

pub(crate) fn read_u16(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(
        buf.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

pub(crate) fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        buf.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

pub(crate) fn read_i32(buf: &[u8], at: usize) -> Option<i32> {
    read_u32(buf, at).map(|v| v as i32)
}

/// A NUL-terminated (or not) attribute string.
pub(crate) fn c_string(value: &[u8]) -> String {
    let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = (HEADER_LEN + payload.len()) as u32;
        let mut v = Vec::new();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(payload);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn attr(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    #[test]
    fn splits_messages_and_rejects_bad_lengths() {
        let mut buf = message(16, 0, 7, &[1, 2, 3]);
        buf.extend(message(NLMSG_ERROR, 0, 7, &0i32.to_ne_bytes()));
        let mut rest = buf.as_slice();
        let a = next_message(&mut rest).unwrap().unwrap();
        assert_eq!((a.ty, a.seq, a.payload), (16, 7, &[1u8, 2, 3][..]));
        let b = next_message(&mut rest).unwrap().unwrap();
        assert_eq!(b.ty, NLMSG_ERROR);
        assert!(decode_ack(&b).is_ok());
        assert!(next_message(&mut rest).unwrap().is_none());

        for bad in [
            vec![1u8, 2, 3],
            {
                let mut m = message(16, 0, 1, &[]);
                m[0] = 200; // longer than the buffer
                m
            },
            {
                let mut m = message(16, 0, 1, &[]);
                m[0..4].copy_from_slice(&4u32.to_ne_bytes()); // shorter than a header
                m
            },
        ] {
            let mut rest = bad.as_slice();
            assert!(matches!(
                next_message(&mut rest),
                Err(Failure::Malformed(_))
            ));
        }
    }

    #[test]
    fn decodes_errno_and_ext_ack_message() {
        // Capped: error, the request's header, then TLVs.
        let mut payload = (-libc::EEXIST).to_ne_bytes().to_vec();
        payload.extend_from_slice(&[0u8; HEADER_LEN]);
        payload.extend(attr(NLMSGERR_ATTR_MSG, b"Interface exists\0"));
        let m = Msg {
            ty: NLMSG_ERROR,
            flags: NLM_F_CAPPED | NLM_F_ACK_TLVS,
            seq: 1,
            payload: &payload,
        };
        match decode_ack(&m) {
            Err(Failure::Kernel { errno, message }) => {
                assert_eq!(errno, libc::EEXIST);
                assert_eq!(message.as_deref(), Some("Interface exists"));
            }
            other => panic!("{other:?}"),
        }

        // Not capped: the request's payload (6 bytes, padded to 8) sits
        // between the header and the TLVs.
        let mut payload = (-libc::ENODEV).to_ne_bytes().to_vec();
        let mut orig = ((HEADER_LEN + 6) as u32).to_ne_bytes().to_vec();
        orig.resize(HEADER_LEN, 0);
        payload.extend(orig);
        payload.extend_from_slice(&[9u8; 8]);
        payload.extend(attr(NLMSGERR_ATTR_MSG, b"no device"));
        let m = Msg {
            ty: NLMSG_ERROR,
            flags: NLM_F_ACK_TLVS,
            seq: 1,
            payload: &payload,
        };
        match decode_ack(&m) {
            Err(Failure::Kernel { errno, message }) => {
                assert_eq!(errno, libc::ENODEV);
                assert_eq!(message.as_deref(), Some("no device"));
            }
            other => panic!("{other:?}"),
        }

        // Truncated error message: still an error, never a panic.
        let m = Msg {
            ty: NLMSG_ERROR,
            flags: NLM_F_ACK_TLVS,
            seq: 1,
            payload: &(-libc::EPERM).to_ne_bytes(),
        };
        assert_eq!(decode_ack(&m).unwrap_err().errno(), Some(libc::EPERM));
        let m = Msg {
            ty: NLMSG_ERROR,
            flags: 0,
            seq: 1,
            payload: &[1, 2],
        };
        assert!(matches!(decode_ack(&m), Err(Failure::Malformed(_))));
    }

    #[test]
    fn attribute_walk_stops_on_garbage() {
        let mut buf = attr(3, b"eth0\0");
        buf.extend(attr(4, &1500u32.to_ne_bytes()));
        buf.extend_from_slice(&[0xff, 0xff, 1, 0]); // claims 65535 bytes
        let got: Vec<_> = attrs(&buf).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(c_string(got[0].1), "eth0");
        assert_eq!(read_u32(got[1].1, 0), Some(1500));
        assert_eq!(attrs(&[0u8, 0, 0, 0]).count(), 0); // length 0
        assert_eq!(attrs(&[8u8, 0]).count(), 0);
    }

    #[test]
    fn dump_done_carries_errors() {
        let ok = 0i32.to_ne_bytes();
        assert!(decode_done(&Msg {
            ty: NLMSG_DONE,
            flags: 0,
            seq: 1,
            payload: &ok
        })
        .is_ok());
        assert!(decode_done(&Msg {
            ty: NLMSG_DONE,
            flags: 0,
            seq: 1,
            payload: &[]
        })
        .is_ok());
        let bad = (-libc::EINVAL).to_ne_bytes();
        let err = decode_done(&Msg {
            ty: NLMSG_DONE,
            flags: 0,
            seq: 1,
            payload: &bad,
        });
        assert_eq!(err.unwrap_err().errno(), Some(libc::EINVAL));
    }
}
