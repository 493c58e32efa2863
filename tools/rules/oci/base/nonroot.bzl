"""The user every image runs as: its one source.

The base image's /etc/passwd and /etc/group are generated from it and its config's User is
NONROOT_USER, which every image inherits; image_structure_test requires that User and that every
file not owned by root is owned by this user. Compose and Kubernetes take the user from the image
(deploy/README.md), so changing NONROOT_UID is all a change of the uid needs.
"""

# distroless' nonroot user, so that the images behave like the images people know.
NONROOT_UID = 65532

# The user's own group, distroless' convention.
NONROOT_GID = NONROOT_UID

# "uid:gid": an image config's User.
NONROOT_USER = "%d:%d" % (NONROOT_UID, NONROOT_GID)

# "uid.gid": the owner of a path in a layer, as pkg_tar's `owners` spells it.
NONROOT_OWNER = "%d.%d" % (NONROOT_UID, NONROOT_GID)
