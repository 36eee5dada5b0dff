/*
 * value_hash.c
 *		Canonical value hashes and the literal-constant scan (see
 *		value_hash.h), shared by the extension and n1scan.
 *
 * Plain C99, no PostgreSQL headers.  Must never allocate, keep state, or
 * call locale-aware C library functions (the server's hot path uses it).
 */
#include <stdbool.h>

#include "value_hash.h"

uint64_t
n1_hash_text_value(const char *p, int len)
{
	const uint64_t k = UINT64_C(0x9E3779B97F4A7C15);

	if (len >= 1 && len <= 19)
	{
		int			start = p[0] == '-' ? 1 : 0;
		int			i = start;
		int64_t		v = 0;

		while (i < len && p[i] >= '0' && p[i] <= '9')
			v = v * 10 + (p[i++] - '0');
		/* all digits, 1 to 18 of them, no leading zero, no "-0" */
		if (i == len && len > start && len - start <= 18 &&
			!(p[start] == '0' && (len - start > 1 || start == 1)))
			return n1_hash_int(start ? -v : v);
	}
	if (len == 36 && p[8] == '-' && p[13] == '-' && p[18] == '-' && p[23] == '-')
	{
		unsigned char u[16];
		int			j = 0;

		for (int i = 0; i < 35 && j < 16; i++)
		{
			int			hi,
						lo;

			if (i == 8 || i == 13 || i == 18 || i == 23)
				continue;
			hi = n1_hex_value(p[i]);
			lo = n1_hex_value(p[i + 1]);
			if (hi < 0 || lo < 0)
				break;
			u[j++] = (unsigned char) (hi << 4 | lo);
			i++;
		}
		if (j == 16)
			return n1_hash_uuid(u);
	}

	return n1_hash_mix(n1_hash_bytes(p, len, (uint64_t) len * k ^ UINT64_C(0x6a09e667f3bcc908)));
}

/* ASCII classes without the C library's locale-aware calls (hot path). */
static inline bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static inline bool
is_ident_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		(unsigned char) c >= 0x80;
}

static inline bool
is_ident_char(char c)
{
	return is_ident_start(c) || is_digit(c) || c == '$';
}

int
n1_scan_literals(const char *p, int len, uint64_t *out, int max)
{
	int			n = 0;
	int			i = 0;

	while (i < len && n < max)
	{
		char		c = p[i];

		if (c == '\'')
		{
			char		buf[N1_VALUE_MAX_TEXT];
			int			blen = 0;
			bool		too_long = false;

			for (i++; i < len; i++)
			{
				if (p[i] == '\'')
				{
					if (i + 1 < len && p[i + 1] == '\'')
						i++;	/* '' is one quote */
					else
						break;
				}
				if (blen < N1_VALUE_MAX_TEXT)
					buf[blen++] = p[i];
				else
					too_long = true;
			}
			i++;
			if (!too_long)
				out[n++] = n1_hash_text_value(buf, blen);
		}
		else if (c == '-' && i + 1 < len && p[i + 1] == '-')
		{
			while (i < len && p[i] != '\n')
				i++;
		}
		else if (c == '/' && i + 1 < len && p[i + 1] == '*')
		{
			for (i += 2; i + 1 < len && !(p[i] == '*' && p[i + 1] == '/'); i++)
				;
			i += 2;
		}
		else if (c == '"')
		{
			for (i++; i < len && p[i] != '"'; i++)
				;
			i++;
		}
		else if (c == '$')
		{
			int			tag_end = i + 1;

			while (tag_end < len && is_ident_char(p[tag_end]) && p[tag_end] != '$')
				tag_end++;
			if (tag_end < len && p[tag_end] == '$' &&
				!is_digit(p[i + 1]))
			{
				/* dollar quoting: skip to the closing tag */
				int			tag_len = tag_end - i + 1;

				for (i = tag_end + 1; i + tag_len <= len; i++)
					if (memcmp(p + i, p + tag_end - tag_len + 1, tag_len) == 0)
						break;
				i += tag_len;
			}
			else
				i = tag_end;	/* $n */
		}
		else if (is_digit(c))
		{
			int			start = i;
			bool		negative = start > 0 && p[start - 1] == '-' &&
				(start < 2 || !(is_ident_char(p[start - 2]) || p[start - 2] == ')'));
			int64_t		v = 0;
			bool		integral = true;

			for (; i < len && is_digit(p[i]); i++)
				v = v * 10 + (p[i] - '0');
			if (i < len && (p[i] == '.' || p[i] == 'e' || p[i] == 'E'))
			{
				integral = false;
				while (i < len && (is_ident_char(p[i]) || p[i] == '.' ||
								   ((p[i] == '-' || p[i] == '+') &&
									(p[i - 1] == 'e' || p[i - 1] == 'E'))))
					i++;
			}
			if (integral && i - start <= 18)
				out[n++] = n1_hash_int(negative ? -v : v);
		}
		else if (is_ident_start(c))
		{
			while (i < len && is_ident_char(p[i]))
				i++;
		}
		else
			i++;
	}
	return n;
}
