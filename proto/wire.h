/*  wire: the one codec of the intake and delivery protocols (PROTOCOL.md).

    Every message is a head of fixed frames (signature, command, then the
    command's fields) followed, for BATCH, REPLAY and DELIVER, by one frame
    per record, and for BATCHP and DELIVERP by frames that pack them. The codec
    owns the heads and the packed frame's layout; records are never copied
    by it: a sender streams them after omni_wire_send_head, a receiver reads
    them after the head with its own zmq_msg_recv (ingestd journals each one
    as it comes) or from the zmsg it decoded. No other file spells a
    signature, a command or a field's width.

    Why DELIVERP. A frame costs libzmq the same whatever its size: a send
    (an allocation and a copy above 33 bytes), the I/O thread's encoding or
    decoding, a receive. With records of a hundred bytes that is most of
    what moving them costs: on loopback TCP a million 120-byte records took
    0.6-1.2 CPU s as frames and 0.15 s packed 500 to a frame, both ends
    (bench/zmq_frames.c). A writer asks for it in HELLO (`features`), so ingestd never
    sends it to a writer that would not read it; ingestd says it takes
    BATCHP in its ACKs (`features`), so a collector sends it only to an
    ingestd that said so.                                                   */
#ifndef OMNI_WIRE_H
#define OMNI_WIRE_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WIRE_INTAKE_SIGNATURE   "OI/1"
#define WIRE_DELIVERY_SIGNATURE "OD/1"

typedef enum {
    WIRE_INTAKE,  //  collectors and omnictl replay -> ingestd
    WIRE_DELIVERY //  ingestd <-> writers
} omni_wire_protocol_t;

typedef enum {
    WIRE_NONE = 0,
    //  intake
    WIRE_BATCH,        //  seq record...
    WIRE_REPLAY,       //  seq writers record...
    WIRE_INTAKE_ACK,   //  seq accepted rejected [features]
    WIRE_INTAKE_ERROR, //  seq reason
    //  delivery
    WIRE_HELLO,        //  name window [instance [features]]
    WIRE_WELCOME,      //  journal cursor
    WIRE_REFUSED,      //  reason (ERROR: the name is held)
    WIRE_DELIVER,      //  upto record...
    WIRE_DELIVERY_ACK, //  upto window
    WIRE_RESET,        //  reason
    WIRE_HEARTBEAT,    //  cursor
    WIRE_CONFLICT,     //  record... (writer -> ingestd)
    WIRE_DELIVERP,     //  upto packed (one frame: omni_wire_pack)
    WIRE_BATCHP,       //  seq packed... (frames of omni_wire_pack)
    WIRE_COMMANDS
} omni_wire_command_t;

#define WIRE_JOURNAL_ID 16 //  bytes of WELCOME's journal identity
#define WIRE_HEAD_MAX   6  //  frames of the longest head (HELLO: 6, intake ACK: 5)

//  HELLO's and intake ACK's features: words separated by blanks; unknown
//  ones are ignored. "packed", from a writer: send DELIVERP rather than
//  DELIVER when there are records; from ingestd: BATCHP is taken.
#define WIRE_FEATURE_PACKED "packed"
//  A BATCHP's frame packs records up to this many bytes, and a larger
//  record alone: within ingestd's frame bound (max_record_size + 64 KiB)
//  whatever max_record_size is, as a record a frame is.
#define WIRE_PACK_FRAME 65536

//  What ingestd's delivery socket takes from a writer: frames of at most
//  WIRE_DELIVERY_FRAME_MAX bytes (a larger one closes the connection: the
//  socket's bound against hostile peers) and, of a message, its first
//  WIRE_DELIVERY_FRAMES frames (routing id included; the rest is read past).
//  So a CONFLICT carries at most WIRE_CONFLICT_RECORDS records, each within
//  the frame bound; the writer's conflicts file holds every one whatever
//  its size, the tap shows those that fit.
#define WIRE_DELIVERY_FRAME_MAX 4096
#define WIRE_DELIVERY_FRAMES    8
#define WIRE_CONFLICT_RECORDS   (WIRE_DELIVERY_FRAMES - 3)

//  A message's head. On decode, `text` and `instance` point into the frames
//  they were decoded from and live as long as those.
typedef struct {
    omni_wire_command_t command;
    uint64_t seq;                     //  BATCH REPLAY INTAKE_ACK INTAKE_ERROR
    uint32_t accepted, rejected;      //  INTAKE_ACK
    uint64_t upto;                    //  DELIVER DELIVERY_ACK
    uint32_t window;                  //  HELLO DELIVERY_ACK
    uint64_t cursor;                  //  WELCOME HEARTBEAT
    uint8_t journal[WIRE_JOURNAL_ID]; //  WELCOME
    const char *text;                 //  REPLAY's writers, a reason, HELLO's name
    size_t text_size;
    const char *instance; //  HELLO's optional instance; NULL when absent
    size_t instance_size;
    const char *features; //  HELLO's (after instance), intake ACK's; NULL when absent
    size_t features_size;
} omni_wire_head_t;

//  Whether the head's features (HELLO's, intake ACK's) hold the word `feature`.
bool omni_wire_has_feature (const omni_wire_head_t *head, const char *feature);

//  The command's name on the wire ("BATCH", "ACK", ...).
const char *omni_wire_command_name (omni_wire_command_t command);
//  Whether record frames follow the head of this command.
bool omni_wire_carries_records (omni_wire_command_t command);

//  Sends `head` on `sock` (a raw libzmq socket), after the ROUTER identity
//  `peer` when one is given. `more`: record frames follow. `flags` may hold
//  ZMQ_DONTWAIT; it applies to the first frame only, the others of a message
//  whose first frame went through never block. Returns 0, or -1 with
//  zmq_errno() set when the first frame could not be sent.
int omni_wire_send_head (void *sock, const void *peer, size_t peer_size,
                         const omni_wire_head_t *head, bool more, int flags);
//  One record frame after a head; `last` ends the message.
int omni_wire_send_record (void *sock, const void *data, size_t size, bool last);
//  Receives one frame into `part` (zmq_msg_recv). A blocking receive (no
//  ZMQ_DONTWAIT) interrupted by a signal is made again: once a message's
//  first frame is in, the rest are there (ZeroMQ delivers whole messages).
//  Returns 0, or -1 with zmq_errno() set.
int omni_wire_recv_part (void *sock, zmq_msg_t *part, int flags);

//  A head being received frame by frame (ingestd reads its sockets without
//  building a zmsg, so that a large batch streams into the journal).
//  omni_wire_head_feed is given each frame in order, until it returns non-zero:
//   1  the head is complete and valid (`head` filled; records, if any, follow;
//      for a command without records, frames after its fields are a later
//      version's optional fields: read past, as an old ingestd reads past
//      HELLO's instance)
//  -1  the message is malformed: `why` says how, in words
//   0  more head frames are needed
int omni_wire_head_feed (omni_wire_protocol_t protocol, omni_wire_head_t *head, size_t index,
                         const void *data, size_t size, bool more, char *why, size_t why_size);

//  Decodes the head of a whole message, for peers that receive zmsg_t.
//  On success the message's cursor is on the head's last frame, so that
//  zmsg_next returns the first record. Returns 0, or -1 with `why`.
int omni_wire_decode (omni_wire_protocol_t protocol, zmsg_t *msg, omni_wire_head_t *head, char *why,
                      size_t why_size);

//  Builds a whole message of a head with no records, for zmsg peers.
zmsg_t *omni_wire_encode (omni_wire_protocol_t protocol, const omni_wire_head_t *head);

//  A packed frame (DELIVERP's, BATCHP's): count:u32, count sizes:u32,
//  then the records end to end (integers big-endian, as everywhere).
//  omni_wire_pack_size is the frame's size for `count` records of `bytes`
//  in all; omni_wire_pack writes into `frame` records first .. first +
//  count - 1 of `data`, where record i ends at ends[i] (and starts at
//  ends[i - 1], at 0 for the first).
size_t omni_wire_pack_size (size_t count, size_t bytes);
void omni_wire_pack (void *frame, const char *data, const size_t *ends, size_t first, size_t count);
//  Checks a packed frame and finds its parts: `*count` records, whose sizes
//  omni_wire_packed_size reads, end to end at `*records`. The sizes must add
//  up to the frame exactly and none may be 0. Returns 0, or -1 with `why`
//  (`*count` and `*records` left as they were).
int omni_wire_unpack (const void *frame, size_t size, size_t *count, const uint8_t **records,
                      char *why, size_t why_size);
size_t omni_wire_packed_size (const void *frame, size_t i);
//  Sends records first .. first + count - 1 (as omni_wire_pack takes them)
//  as one packed frame after a head; `last` ends the message. The frame is
//  built in libzmq's own message: no copy beyond the packing.
int omni_wire_send_packed (void *sock, const char *data, const size_t *ends, size_t first,
                           size_t count, bool last);

void omni_wire_test (bool verbose);

#endif
