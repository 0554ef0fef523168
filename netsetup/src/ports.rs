//! Published ports: `-p [HOSTIP:]HOSTPORT[-END]:CONTAINERPORT[-END][/tcp|udp]`.
