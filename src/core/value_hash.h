/*
 * value_hash.h
 *		The canonical hash of one value, shared by every front end: the
 *		extension (src/server/result_capture.c hashes parameter and result
 *		values with it) and n1scan (src/scan/, parameter values of a log).
 *		An integer of any width, or a text holding its canonical decimal
 *		form, hashes alike; a uuid and its text form hash alike; other texts
 *		by their bytes.
 *
 * Plain C99, no PostgreSQL headers; this file must never allocate or keep
 * state (the server calls it on its per-statement hot path).
 */
#ifndef N1DETECT_VALUE_HASH_H
#define N1DETECT_VALUE_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Longest text value hashed, bytes (longer ones are skipped). */
#define N1_VALUE_MAX_TEXT 64

static inline uint64_t
n1_hash_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= UINT64_C(0xff51afd7ed558ccd);
	x ^= x >> 33;
	x *= UINT64_C(0xc4ceb9fe1a85ec53);
	x ^= x >> 33;
	return x;
}

/*
 * A fast 64-bit hash of a byte string, 8 bytes at a time (multiply and
 * xor-shift), from the seed h: for equality tests of short strings
 * (a statement's constants, parameters, comment tags), not for tables.
 */
static inline uint64_t
n1_hash_bytes(const char *p, size_t len, uint64_t h)
{
	const uint64_t k = UINT64_C(0x9E3779B97F4A7C15);
	uint64_t	w;

	while (len >= 8)
	{
		memcpy(&w, p, 8);
		h = (h ^ w) * k;
		h ^= h >> 29;
		p += 8;
		len -= 8;
	}
	if (len > 0)
	{
		w = 0;
		memcpy(&w, p, len);
		h = (h ^ w) * k;
		h ^= h >> 29;
	}
	return h;
}

/* Value of a hexadecimal digit, or -1. */
static inline int
n1_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static inline uint64_t
n1_hash_int(int64_t v)
{
	return n1_hash_mix((uint64_t) v ^ UINT64_C(0x1f83d9abfb41bd6b));
}

static inline uint64_t
n1_hash_uuid(const unsigned char *u)
{
	uint64_t	a,
				b;

	memcpy(&a, u, 8);
	memcpy(&b, u + 8, 8);
	return n1_hash_mix(n1_hash_mix(a ^ UINT64_C(0x5be0cd19137e2179)) ^ b);
}

/*
 * Hash of a text value: as an integer when it is one in canonical decimal
 * form ("42", "-7"; not "042" or "+1"), as a uuid when it is one in the
 * standard 8-4-4-4-12 form, else by its bytes.
 */
extern uint64_t n1_hash_text_value(const char *p, int len);

/*
 * Hashes of the literal constants of a statement's text (the simple
 * protocol's parameters), at most max of them: integer literals and string
 * literals of at most N1_VALUE_MAX_TEXT bytes; floats, dollar-quoted
 * strings, identifiers, comments and $n are skipped.  Reads p[0..len).
 */
extern int	n1_scan_literals(const char *p, int len, uint64_t *out, int max);

#endif							/* N1DETECT_VALUE_HASH_H */
