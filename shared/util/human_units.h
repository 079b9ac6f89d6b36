// Numbers for people: byte sizes in binary units and counts with SI suffixes, one decimal.
#pragma once

#include <string>

namespace dipaco {

// "1.5 MiB", "12 B".
std::string human_bytes(double bytes);
// "24.7 k", "3.1 M", "1.2 G".
std::string human_count(double count);
// One double through a printf format with a single conversion ("%.4f" → "5.5789").
std::string format_double(const char* printf_format, double v);

}  // namespace dipaco
