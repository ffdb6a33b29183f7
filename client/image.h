/*
 * image.h: the PNG that relayq attaches to its test message.  The bytes
 * are generated at build time from client/image.png (see the Makefile).
 */
#ifndef RELAYQ_IMAGE_H
#define RELAYQ_IMAGE_H

#include <stddef.h>

extern const unsigned char	image_png[];
extern const size_t		image_png_len;

#endif /* RELAYQ_IMAGE_H */
