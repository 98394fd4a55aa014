"""The OpenADR 3 VTN inside cpm (``/openadr3``): programs, events, reports, subscriptions, VENs and resources of
the OpenADR 3.0.1 API over cpm's own objects (a cpm program is an OpenADR program, an aggregator a VEN, its devices
resources, a reserved cpm event an OpenADR event targeted at the VENs holding reserved devices)."""
