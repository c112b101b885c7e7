/* The three ways an FTP server describes a directory entry. Pure
 * formatting: the caller stats the entry (never following a link, so
 * nothing outside the root is described) and sends the text.
 *
 *   LIST  drwxr-xr-x   2 ftp      ftp          4096 Mar  3 14:07 pub
 *   NLST  pub
 *   MLSD  type=dir;modify=20240303140702;perm=el; pub
 *
 * LIST is for people and its format is only a custom (that of ls -l);
 * MLSD (RFC 3659) is for programs, which is why mirroring clients prefer
 * it. Times are UTC throughout, as RFC 3659 requires for MLSD and MDTM. */
#ifndef FTP_LISTING_H
#define FTP_LISTING_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <time.h>

enum listing_format {
    LISTING_LONG,  /* LIST */
    LISTING_NAMES, /* NLST */
    LISTING_FACTS, /* MLSD */
};

/* Room that any one formatted line fits in (a name is at most 255 bytes). */
enum { LISTING_LINE_MAX = 512 };

/* Writes one CRLF-terminated line for the entry into out and returns its
 * length; 0 if the entry cannot be sent (a CR or LF in its name would
 * break the line framing, or out is too small). now decides between
 * "Mar  3 14:07" and "Mar  3  2019" in LIST. writable: whether the
 * session may change it (the MLSD perm fact). */
size_t listing_format_entry(char *out, size_t out_len, enum listing_format format, const char *name,
                            const struct stat *st, time_t now, bool writable);

/* The MLSD/MLST facts alone: "type=file;size=3;modify=...;perm=r;". */
size_t listing_facts(char *out, size_t out_len, const struct stat *st, bool writable);

/* "YYYYMMDDHHMMSS" in UTC, as MDTM and the modify fact write a time. */
void listing_timestamp(char out[15], time_t t);

#endif
