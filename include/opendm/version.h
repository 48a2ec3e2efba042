/* version: the release this tree builds. */
#ifndef OPENDM_VERSION_H
#define OPENDM_VERSION_H

#define OPENDM_VERSION "0.1.0"

#endif
