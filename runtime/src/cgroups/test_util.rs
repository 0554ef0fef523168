//! A fake cgroup tree in a temporary directory. Unlike cgroupfs it does not
//! create control files by itself, so tests pre-create the files the code
//! under test may write (writes never create files, so a write to anything
//! else fails the test).

use std::fs;
use std::path::{Path, PathBuf};

use super::{manager_for_root, CgroupManager, CgroupPath, Layout, V1Hierarchy};

struct Hierarchy {
    mountpoint: String,
    leaf_files: Vec<String>,
}

pub(super) struct FakeTree {
    dir: tempfile::TempDir,
    layout: Layout,
    v1: Vec<Hierarchy>,
    /// Mountpoint, root controllers and leaf files of the cgroup2 mount.
    v2: Option<(String, String, Vec<String>)>,
}

fn strings(files: &[&str]) -> Vec<String> {
    files.iter().map(|s| s.to_string()).collect()
}

impl FakeTree {
    /// `hierarchies`: mount directory name (the controller list, e.g.
    /// "cpu,cpuacct" or "name=systemd") and the files of a leaf cgroup.
    pub(super) fn v1(hierarchies: &[(&str, &[&str])]) -> FakeTree {
        let (v1, v1_layout) = Self::v1_parts(hierarchies);
        Self::build(Layout::V1 { hierarchies: v1_layout }, v1, None)
    }

    pub(super) fn v2(root_controllers: &str, leaf_files: &[&str]) -> FakeTree {
        Self::build(
            Layout::V2 {
                mountpoint: PathBuf::new(),
            },
            Vec::new(),
            Some((String::new(), root_controllers.to_owned(), strings(leaf_files))),
        )
    }

    pub(super) fn hybrid(
        hierarchies: &[(&str, &[&str])],
        unified_controllers: &str,
        unified_leaf_files: &[&str],
    ) -> FakeTree {
        let (v1, v1_layout) = Self::v1_parts(hierarchies);
        Self::build(
            Layout::Hybrid {
                hierarchies: v1_layout,
                unified: "unified".into(),
            },
            v1,
            Some((
                "unified".to_owned(),
                unified_controllers.to_owned(),
                strings(unified_leaf_files),
            )),
        )
    }

    fn v1_parts(hierarchies: &[(&str, &[&str])]) -> (Vec<Hierarchy>, Vec<V1Hierarchy>) {
        let mut v1 = Vec::new();
        let mut layout = Vec::new();
        for (name, leaf_files) in hierarchies {
            let mountpoint = name.trim_start_matches("name=").to_owned();
            layout.push(V1Hierarchy {
                controllers: name.split(',').map(str::to_owned).collect(),
                mountpoint: mountpoint.clone().into(),
            });
            v1.push(Hierarchy {
                mountpoint,
                leaf_files: strings(leaf_files),
            });
        }
        (v1, layout)
    }

    fn build(layout: Layout, v1: Vec<Hierarchy>, v2: Option<(String, String, Vec<String>)>) -> FakeTree {
        let tree = FakeTree {
            dir: tempfile::tempdir().expect("tempdir"),
            layout,
            v1,
            v2,
        };
        for h in &tree.v1 {
            fs::create_dir_all(tree.root().join(&h.mountpoint)).expect("mkdir");
        }
        if let Some((mountpoint, controllers, _)) = &tree.v2 {
            let dir = tree.root().join(mountpoint);
            fs::create_dir_all(&dir).expect("mkdir");
            fs::write(dir.join("cgroup.controllers"), controllers).expect("write");
            fs::write(dir.join("cgroup.subtree_control"), "").expect("write");
        }
        tree
    }

    pub(super) fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `rel` below the tree; an absolute path would make `join` escape it.
    fn path(&self, rel: &str) -> PathBuf {
        assert!(!rel.starts_with('/'), "test path {rel:?} must be relative");
        self.root().join(rel)
    }

    pub(super) fn manager(&self, path: &str) -> Box<dyn CgroupManager> {
        manager_for_root(
            self.root(),
            self.layout.clone(),
            CgroupPath::new(path).expect("valid test path"),
        )
        .expect("manager")
    }

    /// Creates the cgroup `rel` the way cgroupfs would show it: leaf files
    /// (plus cgroup.procs) in every hierarchy, and for cgroup2 the
    /// ancestors' cgroup.controllers/cgroup.subtree_control.
    pub(super) fn populate(&self, rel: &str) {
        assert!(!rel.starts_with('/'), "test path {rel:?} must be relative");
        for h in &self.v1 {
            let dir = self.root().join(&h.mountpoint).join(rel);
            fs::create_dir_all(&dir).expect("mkdir");
            for f in h.leaf_files.iter().map(String::as_str).chain(["cgroup.procs"]) {
                fs::write(dir.join(f), "").expect("write");
            }
        }
        if let Some((mountpoint, controllers, leaf_files)) = &self.v2 {
            let mut dir = self.root().join(mountpoint);
            let components: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
            for (i, c) in components.iter().enumerate() {
                dir.push(c);
                fs::create_dir_all(&dir).expect("mkdir");
                if i + 1 < components.len() {
                    for (file, content) in [("cgroup.controllers", controllers.as_str()), ("cgroup.subtree_control", "")] {
                        if !dir.join(file).exists() {
                            fs::write(dir.join(file), content).expect("write");
                        }
                    }
                }
            }
            for f in leaf_files.iter().map(String::as_str).chain(["cgroup.procs"]) {
                fs::write(dir.join(f), "").expect("write");
            }
        }
    }

    pub(super) fn write(&self, rel: &str, content: &str) {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, content).expect("write");
    }

    pub(super) fn read(&self, rel: &str) -> String {
        let path = self.path(rel);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    pub(super) fn remove(&self, rel: &str) {
        fs::remove_file(self.path(rel)).expect("remove");
    }

    /// Removes every regular file below `rel`, leaving the directories, so
    /// that rmdir works as it does on cgroupfs.
    pub(super) fn clear_files(&self, rel: &str) {
        fn walk(dir: &Path) {
            for entry in fs::read_dir(dir).expect("readdir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path);
                } else {
                    fs::remove_file(&path).expect("remove");
                }
            }
        }
        walk(&self.path(rel));
    }
}
