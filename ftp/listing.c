#include "listing.h"

#include <stdio.h>
#include <string.h>

/* ls -l shows the year instead of the time for entries older than this. */
enum { RECENT_SECONDS = 180 * 24 * 3600 };

void listing_timestamp(char out[15], time_t t)
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) || strftime(out, 15, "%Y%m%d%H%M%S", &tm) == 0)
        strcpy(out, "19700101000000");
}

static char type_letter(mode_t mode)
{
    if (S_ISDIR(mode))
        return 'd';
    if (S_ISLNK(mode))
        return 'l';
    if (S_ISFIFO(mode))
        return 'p';
    if (S_ISSOCK(mode))
        return 's';
    if (S_ISCHR(mode))
        return 'c';
    if (S_ISBLK(mode))
        return 'b';
    return '-';
}

/* "drwxr-xr-x" */
static void mode_string(mode_t mode, char out[11])
{
    static const char letters[] = "rwxrwxrwx";
    out[0] = type_letter(mode);
    for (int i = 0; i < 9; i++)
        out[1 + i] = (mode & (1u << (8 - i))) ? letters[i] : '-';
    out[10] = '\0';
}

/* "Mar  3 14:07" for recent entries, "Mar  3  2019" for old ones. */
static void ls_date(time_t mtime, time_t now, char out[16])
{
    struct tm tm;
    long age = (long)(now - mtime);
    const char *format = (age >= 0 && age < RECENT_SECONDS) ? "%b %e %H:%M" : "%b %e  %Y";
    if (!gmtime_r(&mtime, &tm) || strftime(out, 16, format, &tm) == 0)
        strcpy(out, "Jan  1  1970");
}

size_t listing_facts(char *out, size_t out_len, const struct stat *st, bool writable)
{
    char modify[15];
    listing_timestamp(modify, st->st_mtime);
    int n;
    if (S_ISDIR(st->st_mode))
        n = snprintf(out, out_len, "type=dir;modify=%s;perm=%s;", modify, writable ? "cdeflmp" : "el");
    else if (S_ISREG(st->st_mode))
        n = snprintf(out, out_len, "type=file;size=%lld;modify=%s;perm=%s;", (long long)st->st_size, modify,
                     writable ? "adfrw" : "r");
    else
        n = snprintf(out, out_len, "type=OS.unix=%s;modify=%s;", S_ISLNK(st->st_mode) ? "slink" : "special",
                     modify);
    return n > 0 && (size_t)n < out_len ? (size_t)n : 0;
}

size_t listing_format_entry(char *out, size_t out_len, enum listing_format format, const char *name,
                            const struct stat *st, time_t now, bool writable)
{
    if (strpbrk(name, "\r\n"))
        return 0;

    int n = -1;
    switch (format) {
    case LISTING_NAMES:
        n = snprintf(out, out_len, "%s\r\n", name);
        break;
    case LISTING_FACTS: {
        char facts[128];
        if (listing_facts(facts, sizeof facts, st, writable) == 0)
            return 0;
        n = snprintf(out, out_len, "%s %s\r\n", facts, name);
        break;
    }
    case LISTING_LONG: {
        char mode[11], date[16];
        mode_string(st->st_mode, mode);
        ls_date(st->st_mtime, now, date);
        /* Owner and group are not looked up: a name lookup may read files
         * or ask the network (NSS), which a one-thread server must not. */
        n = snprintf(out, out_len, "%s %3lu ftp      ftp      %12lld %s %s\r\n", mode,
                     (unsigned long)st->st_nlink, (long long)st->st_size, date, name);
        break;
    }
    }
    return n > 0 && (size_t)n < out_len ? (size_t)n : 0;
}
