"""The XMP namespaces hostplug reads and writes, in one place (URIs exactly as the other programs write them)."""

from __future__ import annotations

HOSTPLUG_NS = "http://ns.hostplug.org/xmp/1.0/"  # ours: recipes, provenance
HOSTPLUG_PREFIX = "hostplug"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
X_NS = "adobe:ns:meta/"  # the x:xmpmeta wrapper
XMP_BASIC_NS = "http://ns.adobe.com/xap/1.0/"  # xmp:Rating, xmp:Label
XMP_MM_NS = "http://ns.adobe.com/xap/1.0/mm/"  # xmpMM:DerivedFrom, PreservedFileName
CRS_NS = "http://ns.adobe.com/camera-raw-settings/1.0/"  # Adobe Camera Raw / Lightroom settings
DC_NS = "http://purl.org/dc/elements/1.1/"  # dc:subject keywords
TIFF_NS = "http://ns.adobe.com/tiff/1.0/"  # tiff:Orientation (Lightroom, Camera Raw, digiKam, exiftool)
RIGHTS_NS = "http://ns.adobe.com/xap/1.0/rights/"  # xmpRights:UsageTerms, WebStatement, Marked
LIGHTROOM_NS = "http://ns.adobe.com/lightroom/1.0/"  # lr:hierarchicalSubject, the keyword tree
PHOTOSHOP_NS = "http://ns.adobe.com/photoshop/1.0/"  # IPTC Core's headline, place, credit line, instructions
DARKTABLE_NS = "http://darktable.sf.net/"  # darktable's history, colour labels, tags
