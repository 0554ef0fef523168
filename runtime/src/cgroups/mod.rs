//! cgroups v1, v2 and hybrid hosts behind one `CgroupManager` trait.
