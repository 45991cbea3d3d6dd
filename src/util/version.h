/* version: tern's version, for logs, `tern --version` and the reports tern
 * writes (DMARC's <generator>). One definition every layer may include. */
#ifndef TERN_UTIL_VERSION_H
#define TERN_UTIL_VERSION_H

#define TERN_VERSION "0.1.0"

#endif
