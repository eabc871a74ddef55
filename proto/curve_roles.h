/*  curve_roles: which client keys ingestd lets in, and as what. A client's
    public certificate sits in the curve_clients directory under its role:

        curve_clients/collector/NAME       intake only
        curve_clients/tap/NAME             tap only
        curve_clients/writer/WRITER/NAME   delivery, as writer WRITER only

    NAME (the path under curve_clients, e.g. `writer/archive/archiverd`) is
    the key's name in logs. A key may hold several roles by being in
    several directories.                                                    */
#ifndef OMNI_CURVE_ROLES_H
#define OMNI_CURVE_ROLES_H

#include <stdbool.h>
#include <stddef.h>

//  ingestd's three CURVE sockets, each with the roles it admits.
typedef enum { CURVE_INTAKE = 0, CURVE_DELIVERY, CURVE_TAP, CURVE_SOCKETS } omni_curve_socket_t;

//  "intake", "delivery", "tap".
const char *omni_curve_socket_name (omni_curve_socket_t sock);

typedef struct _omni_curve_roles_t omni_curve_roles_t;

//  Reads `dir` strictly: a certificate directly in it (the layout before
//  roles), an unknown role or writer directory, or a malformed certificate
//  is an error naming the file and how to fix it. NULL on error.
omni_curve_roles_t *omni_curve_roles_new (const char *dir, char *error, size_t error_size);
void omni_curve_roles_destroy (omni_curve_roles_t **self_p);

//  Reads the directory again when a file or directory in it changed, so
//  keys are added and removed at run time. Leniently: what it cannot use is
//  logged and skipped, the rest applies. Returns true when it reloaded.
bool omni_curve_roles_refresh (omni_curve_roles_t *self);

//  The name of a certificate that lets the key (Z85) in on `sock`, or NULL.
//  For delivery, `writers` gets the writer names the key may HELLO as,
//  comma-separated (it may be NULL for the other sockets).
const char *omni_curve_roles_admit (omni_curve_roles_t *self, const char *key,
                                    omni_curve_socket_t sock, char *writers, size_t writers_size);

//  The name of a certificate holding the key, whatever its role, with the
//  key's roles in `roles` ("collector,writer:archive"); NULL when unknown.
const char *omni_curve_roles_describe (omni_curve_roles_t *self, const char *key, char *roles,
                                       size_t roles_size);

//  Certificates loaded (a key in two roles counts twice).
size_t omni_curve_roles_size (omni_curve_roles_t *self);

//  Whether `writers` (as omni_curve_roles_admit gives it) holds `name`.
bool omni_curve_roles_writer_listed (const char *writers, const char *name);

//  Whether `role` is one: "collector", "tap", "writer:NAME" (a writer of
//  the kinds table).
bool omni_curve_roles_known (const char *role);

//  Puts the public half of the certificate at `cert_path` where `role`
//  ("collector", "tap", "writer:NAME") belongs under `clients_dir`,
//  creating the directories; `path` gets where. Never overwrites.
int omni_curve_roles_allow (const char *clients_dir, const char *role, const char *cert_path,
                            char *path, size_t path_size, char *error, size_t error_size);

void omni_curve_roles_test (bool verbose);

#endif
