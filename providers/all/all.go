// Package all registers every power provider nodecycle ships.
package all

import (
	"github.com/nodecycle/nodecycle/providers"
	"github.com/nodecycle/nodecycle/providers/ipmi"
	"github.com/nodecycle/nodecycle/providers/libvirt"
	"github.com/nodecycle/nodecycle/providers/redfish"
	"github.com/nodecycle/nodecycle/providers/virtualbox"
	"github.com/nodecycle/nodecycle/providers/vsphere"
)

// Registry returns a registry with every provider.
func Registry() *providers.Registry {
	r := &providers.Registry{}
	r.Register(vsphere.Name, vsphere.New)
	r.Register(ipmi.Name, ipmi.New)
	r.Register(redfish.Name, redfish.New)
	r.Register(libvirt.Name, libvirt.New)
	r.Register(virtualbox.Name, virtualbox.New)
	return r
}
