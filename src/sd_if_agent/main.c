/* sd-if-agent: SD I/F agent: pairs secondary devices with the primary CPE and relays their traffic
 * to the head-end (J.1020 §7). `sd-if-agent -c FILE ctl ...` talks to the running agent
 * instead (ctl.c). */
#include <string.h>

#include "opendm/daemon.h"
#include "sd_if_agent.h"

int main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "-c") == 0 && strcmp(argv[3], "ctl") == 0)
		return sdif_ctl_main(argv[2], argc - 4, argv + 4);
	return daemon_main(argc, argv, &sd_if_agent_role);
}
