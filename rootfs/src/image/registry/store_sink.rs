//! The image store as the destination of a pull.

use std::io::Write;

use super::{BlobSink, RegistryError};
use crate::image::store::{ImageStore, StoreError};

fn sink_err(e: StoreError) -> RegistryError {
    RegistryError::Sink(Box::new(e))
}

impl BlobSink for ImageStore {
    fn has_blob(&self, digest: &str) -> bool {
        ImageStore::has_blob(self, digest)
    }

    fn write_blob(
        &self,
        digest: &str,
        fill: &mut dyn FnMut(u64, &mut dyn Write) -> Result<(), RegistryError>,
    ) -> Result<(), RegistryError> {
        let mut writer = match self.blob_writer(digest) {
            Ok(w) => w,
            // Another pull stored it while we waited for its lock.
            Err(StoreError::BlobPresent { .. }) => return Ok(()),
            Err(e) => return Err(sink_err(e)),
        };
        let offset = writer.offset();
        fill(offset, &mut writer)?;
        writer.commit().map(drop).map_err(sink_err)
    }

    fn discard_partial(&self, digest: &str) {
        // Through the writer, so that a concurrent writer's lock is honoured.
        if let Ok(mut w) = self.blob_writer(digest) {
            let _ = w.restart();
        }
    }
}
