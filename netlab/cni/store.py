"""host-local's reservations: the reference's on-disk format, and an in-memory twin.

``<dataDir>/<network>/`` holds one file per reserved IP (named by the IP's
text form, content ``<containerID>\\r\\n<ifname>``), ``last_reserved_ip.<N>``
per range set, and an empty ``lock`` taken with flock around every change —
the same files and lock as containernetworking/plugins 1.1.1, so either
plugin reads a directory the other wrote.

Differences, all invisible to a reader of the format:
- a reservation is written to a temporary file and hard-linked into place,
  so a plugin killed mid-write never leaves an empty IP file; a temporary
  file left by a killed plugin is removed by the next one that takes the lock;
- ``last_reserved_ip`` is rewritten in place (see DirStore.write), never
  truncated to zero first;
- nothing is opened through a symlink (O_NOFOLLOW, names relative to the
  directory's descriptor).

``MemoryStore`` keeps the same files in a dict ({filename: content}), for
netlab's virtual namespaces and the in-process API.
"""


import posix

from netlab.cni.sysos import flock_exclusive, join, makedirs

LINE_BREAK = "\r\n"
LAST_PREFIX = "last_reserved_ip."
TMP_PREFIX = ".reserving-"
DEFAULT_DATA_DIR = "/var/lib/cni/networks"


class Store:
    """The primitives; subclasses keep the files somewhere."""

    def read(self, name: str) -> str | None: ...
    def create(self, name: str, content: str) -> bool: ...   # exclusive; False if taken
    def write(self, name: str, content: str) -> None: ...
    def remove(self, name: str) -> None: ...
    def names(self) -> list[str]: ...

    def lock(self) -> None: ...
    def close(self) -> None: ...

    # --- what host-local does with them ------------------------------------------------
    def reserve(self, container_id: str, ifname: str, ip: str, range_id: int) -> bool:
        if not self.create(ip, container_id.strip() + LINE_BREAK + ifname):
            return False
        self.write(LAST_PREFIX + str(range_id), ip)
        return True

    def last_reserved(self, range_id: int) -> str | None:
        return self.read(LAST_PREFIX + str(range_id))

    def _matching(self, key: str) -> list[str]:
        found = []
        for name in self.names():
            content = self.read(name)
            if content is not None and content.strip() == key:
                found.append(name)
        return found

    def get_by_id(self, container_id: str, ifname: str) -> list[str]:
        """Names of the IP files held by (id, ifname), or in the legacy format by id alone."""
        from netlab.cni.ip import parse_ip
        cid = container_id.strip()
        keys = (cid + LINE_BREAK + ifname, cid)
        found = []
        for name in self.names():          # sorted; only IP files can be answers: read only those
            if parse_ip(name) is not None:
                content = self.read(name)
                if content is not None and content.strip() in keys:
                    found.append(name)
        return found

    def find_by_id(self, container_id: str, ifname: str) -> bool:
        cid = container_id.strip()
        return bool(self._matching(cid + LINE_BREAK + ifname) or self._matching(cid))

    def release_by_id(self, container_id: str, ifname: str) -> list[str]:
        cid = container_id.strip()
        names = self._matching(cid + LINE_BREAK + ifname) or self._matching(cid)
        for name in names:
            self.remove(name)
        return names

    def reservations(self) -> dict[str, str]:
        """Every IP file (and leftover temporary file) with its content."""
        from netlab.cni.ip import parse_ip
        out = {}
        for name in self.names():
            if parse_ip(name) is not None or name.startswith(TMP_PREFIX):
                content = self.read(name)
                if content is not None:
                    out[name] = content
        return out


class DirStore(Store):
    def __init__(self, data_dir: str, network: str):
        path = join(data_dir or DEFAULT_DATA_DIR, network)
        makedirs(path, 0o755)
        self.path = path
        self.fd = posix.open(path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_NOFOLLOW | posix.O_CLOEXEC)
        self.lock_fd = -1
        # While the lock is held nobody else changes the files: what this process read or
        # wrote is what is there (last_reserved_ip is read by several steps of an ADD).
        self._known: dict[str, str | None] = {}
        self._listing: list[str] | None = None      # the directory, as of lock(), kept up to date

    def _open(self, name: str, flags: int, mode: int = 0o644) -> int:
        return posix.open(name, flags | posix.O_NOFOLLOW | posix.O_CLOEXEC, mode, dir_fd=self.fd)

    def lock(self) -> None:
        if self.lock_fd < 0:
            self.lock_fd = self._open("lock", posix.O_RDONLY | posix.O_CREAT, 0o750)
        flock_exclusive(self.lock_fd)
        self._known = {}
        # Temporary files are only written under this lock: any left now belongs to a
        # plugin killed mid-write.
        self._listing = sorted(posix.listdir(self.fd))
        for name in self._listing:
            if name.startswith(TMP_PREFIX):
                self.remove(name)

    def close(self) -> None:
        self._known, self._listing = {}, None
        if self.lock_fd >= 0:
            posix.close(self.lock_fd)      # releases the flock
            self.lock_fd = -1
        if self.fd >= 0:
            posix.close(self.fd)
            self.fd = -1

    def read(self, name: str) -> str | None:
        if self.lock_fd >= 0 and name in self._known:
            return self._known[name]
        content = self._read(name)
        if self.lock_fd >= 0:
            self._known[name] = content
        return content

    def _read(self, name: str) -> str | None:
        try:
            fd = self._open(name, posix.O_RDONLY | posix.O_NONBLOCK)
        except OSError:
            return None
        try:
            from _stat import S_ISREG
            if not S_ISREG(posix.fstat(fd).st_mode):
                return None
            return posix.read(fd, 1 << 16).decode("utf-8", "replace")
        finally:
            posix.close(fd)

    def _changed(self, name: str, content: str | None) -> None:
        self._known[name] = content
        if self.lock_fd >= 0 and self._listing is not None:
            if content is None:
                self._listing = [n for n in self._listing if n != name]
            elif name not in self._listing:
                self._listing = sorted(self._listing + [name])

    def _tmp(self, content: str) -> str:
        tmp = f"{TMP_PREFIX}{posix.getpid()}"
        flags = posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL
        try:
            fd = self._open(tmp, flags, 0o644)
        except FileExistsError:        # not after lock(), which removes them; without it, maybe
            posix.unlink(tmp, dir_fd=self.fd)
            fd = self._open(tmp, flags, 0o644)
        try:
            posix.write(fd, content.encode())
        finally:
            posix.close(fd)
        return tmp

    def create(self, name: str, content: str) -> bool:
        tmp = self._tmp(content)
        try:
            posix.link(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
            self._changed(name, content)
            return True
        except FileExistsError:
            return False
        finally:
            posix.unlink(tmp, dir_fd=self.fd)

    def write(self, name: str, content: str) -> None:
        """Rewrite ``name`` in place: pwrite, then cut to the new length. Not a rename
        over it (nor a truncation to zero, as the reference does): ext4 then flushes the
        file before going on (auto_da_alloc), milliseconds per ADD on a busy disk. Only
        last_reserved_ip is written this way, a hint where to continue allocating; a
        write torn by a crash leaves at worst another starting point. Anything but a
        regular file there (a symlink, a FIFO) is replaced by rename instead."""
        data = content.encode()
        try:
            fd = self._open(name, posix.O_WRONLY | posix.O_CREAT | posix.O_NONBLOCK, 0o644)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                from _stat import S_ISREG
                if S_ISREG(posix.fstat(fd).st_mode):
                    posix.pwrite(fd, data, 0)
                    posix.ftruncate(fd, len(data))
                    self._changed(name, content)
                    return
            finally:
                posix.close(fd)
        posix.rename(self._tmp(content), name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        self._changed(name, content)

    def remove(self, name: str) -> None:
        try:
            posix.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            pass
        self._changed(name, None)

    def names(self) -> list[str]:
        if self.lock_fd >= 0 and self._listing is not None:
            return list(self._listing)
        return sorted(posix.listdir(self.fd))


class MemoryStore(Store):
    """The same files in a dict: ``files`` is ``{filename: content}`` of one network."""

    def __init__(self, files: dict[str, str]):
        self.files = files

    def lock(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self, name: str) -> str | None:
        return self.files.get(name)

    def create(self, name: str, content: str) -> bool:
        if name in self.files:
            return False
        self.files[name] = content
        return True

    def write(self, name: str, content: str) -> None:
        self.files[name] = content

    def remove(self, name: str) -> None:
        self.files.pop(name, None)

    def names(self) -> list[str]:
        return sorted(self.files)


class Files:
    """A node's files as a flat dict ``{absolute path: content}`` (netlab's World keeps
    one per node): host-local's data dir is the paths under ``<dataDir>/<network>/``."""

    def __init__(self, tree: dict[str, str]):
        self.tree = tree


class FileTreeStore(MemoryStore):
    def __init__(self, tree: dict[str, str], directory: str):
        self.tree = tree
        self.prefix = directory.rstrip("/") + "/"

    def lock(self) -> None:
        """host-local's empty ``lock`` file: made at the first lock, kept for good (the
        kernel's data dir shows it in `ls`, as the reference's does)."""
        self.tree.setdefault(self.prefix + "lock", "")

    def read(self, name: str) -> str | None:
        return self.tree.get(self.prefix + name)

    def create(self, name: str, content: str) -> bool:
        if self.prefix + name in self.tree:
            return False
        self.tree[self.prefix + name] = content
        return True

    def write(self, name: str, content: str) -> None:
        self.tree[self.prefix + name] = content

    def remove(self, name: str) -> None:
        self.tree.pop(self.prefix + name, None)

    def names(self) -> list[str]:
        n = len(self.prefix)
        return sorted(k[n:] for k in self.tree if k.startswith(self.prefix) and "/" not in k[n:])


def store_for(memory, data_dir: str, network: str) -> Store:
    """Where host-local keeps one network's files: a directory (``memory`` None), a
    dict of networks ``{network: {filename: content}}``, or a node's Files."""
    if memory is None:
        return DirStore(data_dir, network)
    if isinstance(memory, Files):
        return FileTreeStore(memory.tree, join(data_dir or DEFAULT_DATA_DIR, network))
    return MemoryStore(memory.setdefault(network, {}))
