/* sd-if-agent: SD I/F agent: pairs secondary devices with the primary CPE and relays their traffic
 * to the head-end (J.1020 §7). */
#include "opendm/daemon.h"
#include "sd_if_agent.h"

int main(int argc, char **argv)
{
	return daemon_main(argc, argv, &sd_if_agent_role);
}
