//! Images: references as Docker parses them (`reference`), the OCI
//! distribution client (`registry`), the content-addressed store of blobs and
//! unpacked layers (`store`), safe layer unpacking (`unpack`), and the
//! per-container copy-on-write rootfs (`overlay`).

pub mod reference;
pub mod registry;
pub mod config;
pub mod overlay;
pub mod store;
pub mod unpack;
