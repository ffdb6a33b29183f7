/*
 * fuzz_base64.c: libFuzzer harness for base64 and the SASL decoders built
 * on it.  Strict decode of arbitrary text must stay inside its buffer;
 * encode then decode must give the input back, wrapped or not.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "sasl.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Encode data (wrapped or not), decode it back and compare. */
static void
fuzz_roundtrip(const uint8_t *data, size_t size, int wrap)
{
	char	*enc;
	uint8_t	*dec;
	size_t	 cap, n;
	long	 m;

	cap = (wrap ? base64_wrapped_len(size) : base64_encoded_len(size)) + 1;
	if ((enc = malloc(cap)) == NULL || (dec = malloc(size + 1)) == NULL)
		abort();
	n = base64_encode(data, size, enc, cap, wrap);
	if (n >= cap || enc[n] != '\0')
		abort();
	if (!wrap) {
		m = base64_decode(enc, n, dec, size + 1);
		if (m < 0 || (size_t)m != size || memcmp(dec, data, size) != 0)
			abort();
	}
	free(enc);
	free(dec);
}

/* Decode arbitrary text strictly, then as SASL PLAIN and LOGIN. */
static void
fuzz_decode(const uint8_t *data, size_t size)
{
	struct sasl_cred	 cred;
	char			*text, field[SASL_FIELD_MAX];
	uint8_t			*dec;
	const char		*reason;
	size_t			 cap = size / 4 * 3 + 3;
	long			 m;

	if ((text = malloc(size + 1)) == NULL || (dec = malloc(cap)) == NULL)
		abort();
	memcpy(text, data, size);
	text[size] = '\0';
	m = base64_decode(text, size, dec, cap);
	if (m > (long)cap)
		abort();
	/* A buffer one byte short must be refused, not overrun. */
	if (m > 0 && base64_decode(text, size, dec, (size_t)m - 1) >= 0)
		abort();
	if (sasl_plain_decode(text, &cred, &reason) == 0 &&
	    (strlen(cred.user) >= sizeof(cred.user) ||
	    strlen(cred.pass) >= sizeof(cred.pass)))
		abort();
	sasl_cred_clear(&cred);
	if (sasl_login_decode(text, field, sizeof(field)) == 0 &&
	    strlen(field) >= sizeof(field))
		abort();
	free(text);
	free(dec);
}

/* Both directions on every input. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 16384)
		return 0;
	fuzz_roundtrip(data, size, 0);
	fuzz_roundtrip(data, size, 1);
	fuzz_decode(data, size);
	return 0;
}
