# archiverd: the JSON Lines writer (archive.c is its store).
$(eval $(call program,archiverd,archiverd/main.c archiverd/archive.c archiverd/archive_ids.c archiverd/bloom.c archiverd/coldfile.c,libzstd libnats))
$(eval $(call selftest,archiverd-selftest,archiverd/selftest.c archiverd/archive.c archiverd/archive_ids.c archiverd/bloom.c archiverd/coldfile.c,libzstd))
